// One batch: its counts and progress, throughput over time, failures grouped by category,
// its files, and a cancel button. The batch arrives on the event stream (filtered to this
// batch); the timeline and the error summary are re-read when an event says they changed.

import { ApiError, getJSON, getText, isMissingRoute, postJSON } from "../api.js";
import { CANCELLABLE, TERMINAL, Throughput, finished, progressBar, stale, statusBadge } from "../batch-view.js";
import { ThroughputChart } from "../chart.js";
import { lineErrorTable } from "../line-errors.js";
import { byId, fill, h, pageParams, stat } from "../dom.js";
import { DASH, count, duration, int, iso, rate, time, usd } from "../format.js";
import { subscribe } from "../live.js";

const { batch_id: batchId } = pageParams();
const base = `/v1/batches/${encodeURIComponent(batchId)}`;
const api = `/api/batches/${encodeURIComponent(batchId)}`;
const throughput = new Throughput(15);
const chart = new ThroughputChart(byId("chart"));
const EXAMPLES = 3; // failures shown per category
let batch = null;
document.title = `${batchId} · datamill`;
let timelineRoute = true; // false once the server said it has no timeline route
let summaryRoute = true;
const liveBuckets = new Map(); // second -> [completed, failed], when there is no timeline route

function notice(message, tone = "") {
  const node = byId("notice");
  node.className = `notice ${tone}`;
  node.textContent = message;
  node.hidden = !message;
}

// -- the batch ---------------------------------------------------------------------------

function renderBatch() {
  const c = batch.request_counts;
  const done = finished(batch);
  fill(byId("status"), statusBadge(batch.status));
  byId("cancel").hidden = !CANCELLABLE.has(batch.status);
  fill(byId("progress"), progressBar(batch, { large: true }));
  const cost = batch.datamill?.cost_usd ?? null;
  const budget = batch.datamill?.budget_usd;
  fill(
    byId("counts"),
    stat("Requests", int(c.total)),
    stat("Completed", int(c.completed)),
    stat("Failed", int(c.failed)),
    stat("Pending", TERMINAL.has(batch.status) ? int(0) : int(Math.max(0, c.total - done))),
    stat("Requests/s", rate(throughput.rate(batch))),
    stat("ETA", duration(throughput.eta(batch))),
    stat("Tokens", count(batch.usage?.total_tokens ?? 0),
      `${count(batch.usage?.input_tokens ?? 0)} in · ${count(batch.usage?.output_tokens ?? 0)} out`),
    stat("Cost", usd(cost), budget ? `of ${usd(budget)}` : ""),
  );
  renderDetails();
  renderDownloads();
  renderValidationErrors();
}

function renderDetails() {
  const when = (label, unix) => (unix ? [h("dt", {}, label), h("dd", {}, h("time", { datetime: iso(unix) }, time(unix)))] : []);
  const metadata = Object.entries(batch.metadata || {});
  fill(
    byId("details"),
    h("dt", {}, "Endpoint"), h("dd", {}, h("code", {}, batch.endpoint)),
    h("dt", {}, "Mode"), h("dd", {}, batch.datamill?.mode ?? "online"),
    batch.datamill?.stop_reason ? [h("dt", {}, "Stopped"), h("dd", {}, batch.datamill.stop_reason)] : [],
    when("Created", batch.created_at),
    when("Started", batch.in_progress_at),
    when("Finalizing", batch.finalizing_at),
    when("Completed", batch.completed_at),
    when("Failed", batch.failed_at),
    when("Cancelling", batch.cancelling_at),
    when("Cancelled", batch.cancelled_at),
    when("Expired", batch.expired_at),
    when("Expires", TERMINAL.has(batch.status) ? null : batch.expires_at),
    metadata.length
      ? [h("dt", {}, "Metadata"), h("dd", {}, metadata.map(([k, v]) => h("div", {}, h("code", {}, k), " ", v)))]
      : [],
  );
}

function download(href, label, name) {
  return h("li", {}, h("a", { class: "button", href, download: name }, label));
}

function renderDownloads() {
  const items = [download(`/v1/files/${batch.input_file_id}/content`, "Input file", `${batch.id}-input.jsonl`)];
  if (batch.output_file_id) {
    items.push(download(`/v1/files/${batch.output_file_id}/content`, "Output", `${batch.id}-output.jsonl`));
  }
  if (batch.error_file_id) {
    items.push(download(`/v1/files/${batch.error_file_id}/content`, "Errors", `${batch.id}-errors.jsonl`));
  }
  if (!TERMINAL.has(batch.status) && batch.status !== "validating") {
    // Lines recorded so far, while the batch still runs.
    items.push(download(`${base}/output`, "Partial output", `${batch.id}-output.partial.jsonl`));
    items.push(download(`${base}/errors`, "Partial errors", `${batch.id}-errors.partial.jsonl`));
  }
  fill(byId("downloads"), items);
}

// -- errors ------------------------------------------------------------------------------

/** A validation failure: the batch never ran, and errors.data names each bad line. */
function renderValidationErrors() {
  const lines = batch.errors?.data || [];
  if (!lines.length) return;
  fill(
    byId("errors"),
    h("p", {}, `The input file failed validation on ${int(lines.length)} line(s); no request was sent.`),
    lineErrorTable(lines),
  );
}

/** Failures by category, from the server's summary or, without it, from the error lines. */
async function failureGroups() {
  if (summaryRoute) {
    try {
      const summary = await getJSON(`${api}/errors/summary`);
      return summary.data; // [{code, count, examples: [{custom_id, line, message}]}]
    } catch (error) {
      if (!isMissingRoute(error)) throw error;
      summaryRoute = false;
    }
  }
  const { text } = await getText(`${base}/errors`);
  const groups = new Map();
  for (const raw of text.split("\n")) {
    if (!raw.trim()) continue;
    const line = JSON.parse(raw);
    // An answered failure has `error: null` and the answer in `response` (OpenAI's rule).
    const code = line.datamill_category || line.error?.code || "unknown";
    const group = groups.get(code) || { code, count: 0, examples: [] };
    group.count += 1;
    if (group.examples.length < EXAMPLES) {
      const message = line.error?.message ?? line.response?.body?.error?.message;
      group.examples.push({ custom_id: line.custom_id, message });
    }
    groups.set(code, group);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

async function renderFailures() {
  if (!batch.request_counts.failed || batch.errors?.data?.length) return;
  const groups = await failureGroups();
  if (!groups.length) return;
  fill(
    byId("errors"),
    h("div", { class: "error-groups" }, groups.map((group, index) =>
      h("details", { class: "error-group", open: index === 0, dataset: { code: group.code } },
        h("summary", {}, h("code", {}, group.code), h("span", { class: "count" }, `${int(group.count)} request${group.count === 1 ? "" : "s"}`)),
        h("ul", { class: "examples" }, group.examples.slice(0, EXAMPLES).map((example) =>
          h("li", {},
            h("code", {}, example.custom_id ?? ""),
            example.line ? ` (line ${int(example.line)})` : "",
            " ",
            example.message ?? ""))))),
    ),
  );
}

// -- throughput over time ----------------------------------------------------------------

/** GET .../timeline: ``{bucket: seconds, data: [{start, completed, failed}]}``, per second. */
function bucketsFrom(timeline) {
  const width = timeline.bucket || 1;
  return {
    bucket: width,
    times: timeline.data.map((r) => r.start),
    completed: timeline.data.map((r) => r.completed / width),
    failed: timeline.data.map((r) => r.failed / width),
  };
}

/** Without a timeline route: the finished counts between two events, per second. */
function recordLive(previous, next) {
  if (!previous) return;
  const second = Math.floor(Date.now() / 1000);
  const bucket = liveBuckets.get(second) || [0, 0];
  bucket[0] += Math.max(0, next.request_counts.completed - previous.request_counts.completed);
  bucket[1] += Math.max(0, next.request_counts.failed - previous.request_counts.failed);
  liveBuckets.set(second, bucket);
}

async function renderTimeline() {
  let series = null;
  if (timelineRoute) {
    try {
      series = bucketsFrom(await getJSON(`${api}/timeline`));
    } catch (error) {
      if (!isMissingRoute(error)) throw error;
      timelineRoute = false;
    }
  }
  if (!series) {
    const seconds = [...liveBuckets.keys()].sort();
    series = {
      times: seconds,
      completed: seconds.map((s) => liveBuckets.get(s)[0]),
      failed: seconds.map((s) => liveBuckets.get(s)[1]),
    };
  }
  byId("chart-empty").hidden = series.times.length > 0;
  chart.set(series.times, series.completed, series.failed, series.bucket ?? 1);
}

// -- updates -----------------------------------------------------------------------------

/** Run ``task`` at most once per ``every`` ms, the last call always honoured. */
function throttled(task, every) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + every - Date.now());
    timer = setTimeout(async () => {
      timer = null;
      last = Date.now();
      try {
        await task();
      } catch (error) {
        notice(error.message, "bad");
      }
    }, wait);
  };
}

const refreshTimeline = throttled(renderTimeline, 2000);
const refreshFailures = throttled(renderFailures, 2000);

function update(next) {
  if (stale(batch, next)) return;
  const previous = batch;
  batch = next;
  throughput.record(batch);
  recordLive(previous, batch);
  renderBatch();
  if (!previous || finished(previous) !== finished(batch) || previous.status !== batch.status) refreshTimeline();
  if (!previous || previous.request_counts.failed !== batch.request_counts.failed || previous.status !== batch.status) {
    refreshFailures();
  }
}

async function refresh() {
  update(await getJSON(base));
}

async function cancel() {
  try {
    update(await postJSON(`${base}/cancel`));
    notice("");
  } catch (error) {
    notice(error.message, "bad");
  }
}

const dialog = byId("confirm-cancel");
byId("cancel").addEventListener("click", () => dialog.showModal());
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "cancel") cancel();
});

async function start() {
  try {
    await refresh();
  } catch (error) {
    const missing = error instanceof ApiError && error.status === 404;
    notice(missing ? `No such batch: ${batchId}` : error.message, "bad");
    if (missing) for (const section of document.querySelectorAll("main .card")) section.hidden = true;
    return;
  }
  subscribe({ topic: "batch", filters: { batch_id: batchId }, onEvent: update, fallback: { refresh, every: 1000 } });
  setInterval(() => {
    if (batch && !TERMINAL.has(batch.status)) renderBatch(); // rate and ETA move with time
  }, 1000);
}

await start();
