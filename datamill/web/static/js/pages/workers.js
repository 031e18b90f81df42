// Workers: every worker's heartbeat, current batch and counts, and the batches that stopped
// making progress. Read once, then kept current by `worker` events; heartbeat ages tick.

import { getJSON } from "../api.js";
import { statusBadge } from "../batch-view.js";
import { byId, fill, h } from "../dom.js";
import { DASH, ago, duration, int, iso } from "../format.js";
import { subscribe } from "../live.js";

const STUCK_EVERY = 15000; // stuck is about time passing with no event: look again now and then
const workers = new Map();
const body = byId("workers").querySelector("tbody");
const showStopped = byId("show-stopped");

function state(worker) {
  if (worker.status === "running" && worker.alive) return h("span", { class: "badge ok" }, "alive");
  if (worker.status === "running") return h("span", { class: "badge bad" }, "no heartbeat");
  return h("span", { class: "badge idle" }, worker.status);
}

function row(worker) {
  const batch = worker.current_batch_id;
  return h("tr", { dataset: { id: worker.id } },
    h("td", { "data-label": "Worker" }, h("div", {}, h("code", {}, worker.id), h("span", { class: "sub" }, worker.kind))),
    h("td", { "data-label": "State" }, state(worker)),
    h("td", { "data-label": "Host" }, `${worker.host}:${worker.pid}`),
    h("td", { "data-label": "Current batch" }, batch ? h("a", { class: "mono", href: `/batches/${encodeURIComponent(batch)}` }, batch) : DASH),
    h("td", { class: "num", "data-label": "In flight" }, int(worker.in_flight)),
    h("td", { class: "num", "data-label": "Completed" }, int(worker.completed)),
    h("td", { class: "num", "data-label": "Failed" }, int(worker.failed)),
    h("td", { class: "num", "data-label": "Heartbeat" },
      h("time", { class: "beat", datetime: iso(worker.last_heartbeat_at), dataset: { at: worker.last_heartbeat_at } }, ago(worker.last_heartbeat_at))),
  );
}

function render() {
  const shown = [...workers.values()]
    .filter((w) => showStopped.checked || w.status === "running")
    .sort((a, b) => b.started_at - a.started_at);
  fill(body, shown.map(row));
  byId("empty").hidden = shown.length > 0;
}

async function loadWorkers() {
  const answer = await getJSON("/api/workers");
  workers.clear();
  for (const worker of answer.data) workers.set(worker.id, worker);
  render();
}

async function loadStuck() {
  const answer = await getJSON("/api/batches/stuck");
  if (!answer.data.length) return fill(byId("stuck"), h("p", { class: "muted" }, "None: every running batch is making progress."));
  fill(byId("stuck"), h("ul", { class: "stuck-list" }, answer.data.map((item) => {
    const states = Object.entries(item.requests_by_state).map(([name, n]) => `${int(n)} ${name}`).join(", ");
    return h("li", {},
      h("a", { class: "mono", href: `/batches/${encodeURIComponent(item.batch.id)}` }, item.batch.id), " ",
      statusBadge(item.batch.status),
      ` no progress for ${duration(item.stuck_for_seconds)} (${states})`);
  })));
}

/** A `worker` event: ``{event: started|heartbeat|stopped|dead, worker}``. */
function update(payload) {
  const worker = payload.worker ?? payload;
  workers.set(worker.id, { ...workers.get(worker.id), ...worker });
  render();
}

async function refresh() {
  await Promise.all([loadWorkers(), loadStuck()]);
}

showStopped.addEventListener("change", render);
await refresh();
subscribe({ topic: "worker", onEvent: update, fallback: { refresh: loadWorkers, every: 2000 } });
setInterval(() => loadStuck().catch(() => {}), STUCK_EVERY);
setInterval(() => {
  for (const node of body.querySelectorAll("time.beat")) node.textContent = ago(Number(node.dataset.at));
}, 1000);
