// How a batch looks wherever it is shown: status badge, progress bar, throughput, ETA.

import { h } from "./dom.js";
import { int } from "./format.js";

export const TERMINAL = new Set(["completed", "failed", "expired", "cancelled"]);
export const ACTIVE = new Set(["validating", "in_progress", "finalizing", "cancelling"]);
export const CANCELLABLE = new Set(["validating", "in_progress"]);

const TONE = {
  validating: "info",
  in_progress: "info",
  finalizing: "info",
  completed: "ok",
  failed: "bad",
  expired: "warn",
  cancelling: "warn",
  cancelled: "idle",
};

export function statusBadge(status) {
  return h("span", { class: `badge ${TONE[status] || "idle"}`, dataset: { status } }, status.replace("_", " "));
}

export function finished(batch) {
  const c = batch.request_counts || {};
  return (c.completed || 0) + (c.failed || 0);
}

const STAGE = { validating: 0, in_progress: 1, finalizing: 2, cancelling: 2 };
const stage = (batch) => (TERMINAL.has(batch.status) ? 3 : STAGE[batch.status] ?? 0);

/** Whether ``next`` is an older picture of the batch than ``previous``: a page reads the
 *  batch and hears its events at once, and a read can answer after a later event. */
export function stale(previous, next) {
  if (!previous) return false;
  if (stage(next) !== stage(previous)) return stage(next) < stage(previous);
  return finished(next) < finished(previous);
}

/** A progress bar (completed in green, failed in red) with "done / total". */
export function progressBar(batch, { large = false } = {}) {
  const c = batch.request_counts || {};
  const total = c.total || 0;
  const done = finished(batch);
  const share = (n) => (total ? `${(100 * n) / total}%` : "0%");
  const label = total ? `${int(done)} / ${int(total)}` : batch.status === "validating" ? "validating" : "0";
  return h(
    "div",
    { class: `progress${large ? " large" : ""}` },
    h(
      "div",
      {
        class: "bar",
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": total || 1,
        "aria-valuenow": done,
        "aria-label": `${int(done)} of ${int(total)} requests finished`,
      },
      h("span", { class: "done", style: { width: share(c.completed || 0) } }),
      h("span", { class: "failed", style: { width: share(c.failed || 0) } }),
    ),
    h("span", { class: "label" }, label),
  );
}

/**
 * Requests finished per second, from the counts seen over the last ``window`` seconds (each
 * live update is a sample). Before two samples, the average since the batch started.
 */
export class Throughput {
  constructor(window = 20) {
    this.window = window;
    this.samples = new Map(); // batch id -> [[seconds, finished], ...]
  }

  record(batch, now = Date.now() / 1000) {
    const list = this.samples.get(batch.id) || [];
    const done = finished(batch);
    if (list.length && list[list.length - 1][1] === done && now - list[list.length - 1][0] < 1) return;
    list.push([now, done]);
    while (list.length > 2 && now - list[1][0] > this.window) list.shift();
    this.samples.set(batch.id, list);
  }

  /** Requests per second now, or null when unknown (not started, or finished). */
  rate(batch, now = Date.now() / 1000) {
    if (!ACTIVE.has(batch.status) || !batch.in_progress_at) return null;
    const list = this.samples.get(batch.id) || [];
    if (list.length >= 2) {
      const [t0, n0] = list[0];
      const [, n1] = list[list.length - 1];
      const span = Math.max(now - t0, 1);
      return Math.max(0, n1 - n0) / span;
    }
    const since = now - batch.in_progress_at;
    return since > 1 ? finished(batch) / since : null;
  }

  /** Seconds until every request has finished at the current rate, or null. */
  eta(batch, now = Date.now() / 1000) {
    const speed = this.rate(batch, now);
    const left = (batch.request_counts?.total || 0) - finished(batch);
    if (!speed || left <= 0) return null;
    return left / speed;
  }
}

/** The batch's tokens in and out. */
export function tokens(batch) {
  return batch.usage ? batch.usage.total_tokens || 0 : 0;
}
