// Batches: every batch, newest first, with live progress, throughput and ETA.
// The list is read once (GET /v1/batches, 100 at a time); after that each batch's changes
// arrive on the event stream and update its row in place.

import { getJSON } from "../api.js";
import { ACTIVE, Throughput, progressBar, stale, statusBadge, tokens } from "../batch-view.js";
import { byId, fill, h } from "../dom.js";
import { ago, count, duration, iso, rate, usd } from "../format.js";
import { subscribe } from "../live.js";

const PAGE_SIZE = 100;
const batches = new Map(); // id -> Batch object
const throughput = new Throughput();
const body = byId("batches").querySelector("tbody");
const statusFilter = byId("filter-status");
const search = byId("filter-q");
const more = byId("more");
let oldest = null; // the cursor for "Load older batches"

function matches(batch) {
  const status = statusFilter.value;
  if (status === "active" && !ACTIVE.has(batch.status)) return false;
  if (status && status !== "active" && batch.status !== status) return false;
  const words = search.value.trim().toLowerCase();
  if (!words) return true;
  const haystack = [batch.id, batch.model, batch.endpoint, ...Object.values(batch.metadata || {})]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return words.split(/\s+/).every((word) => haystack.includes(word));
}

function row(batch) {
  const description = batch.metadata?.description || batch.model || batch.endpoint;
  const cells = [
    h("td", { class: "id", "data-label": "Batch" }, h("div", {},
      h("a", { href: `/batches/${encodeURIComponent(batch.id)}` }, batch.id),
      h("span", { class: "sub" }, description))),
    h("td", { "data-label": "Status" }, statusBadge(batch.status)),
    h("td", { "data-label": "Progress" }, progressBar(batch)),
    h("td", { class: "num rate", "data-label": "Req/s" }, rate(throughput.rate(batch))),
    h("td", { class: "num eta", "data-label": "ETA" }, duration(throughput.eta(batch))),
    h("td", { class: "num", "data-label": "Tokens" }, count(tokens(batch))),
    h("td", { class: "num", "data-label": "Cost" }, usd(batch.datamill?.cost_usd ?? null)),
    h("td", { class: "num", "data-label": "Created" },
      h("time", { datetime: iso(batch.created_at), title: iso(batch.created_at) }, ago(batch.created_at))),
  ];
  return h("tr", { dataset: { id: batch.id, status: batch.status } }, cells);
}

function render() {
  const shown = [...batches.values()]
    .filter(matches)
    .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  fill(body, shown.map(row));
  const active = [...batches.values()].filter((b) => ACTIVE.has(b.status)).length;
  fill(byId("summary"), `${shown.length} of ${batches.size} loaded batches shown · ${active} running`);
  byId("empty").hidden = batches.size > 0;
}

/** Update one batch's row in place (or add it), without redrawing the table. */
function upsert(batch) {
  if (stale(batches.get(batch.id), batch)) return;
  const known = batches.has(batch.id);
  batches.set(batch.id, batch);
  throughput.record(batch);
  const current = body.querySelector(`tr[data-id="${CSS.escape(batch.id)}"]`);
  if (!known || !current) return render();
  if (!matches(batch)) return current.remove();
  const next = row(batch);
  if (current.dataset.status !== batch.status) next.classList.add("flash");
  current.replaceWith(next);
}

async function load({ older = false } = {}) {
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  if (older && oldest) query.set("after", oldest);
  const page = await getJSON(`/v1/batches?${query}`);
  for (const batch of page.data) {
    batches.set(batch.id, batch);
    throughput.record(batch);
  }
  if (!older || page.data.length) oldest = page.last_id ?? oldest;
  more.hidden = !page.has_more;
  render();
}

/** Re-read the newest page (the fallback when the server has no event stream). */
async function refresh() {
  const page = await getJSON(`/v1/batches?limit=${PAGE_SIZE}`);
  for (const batch of page.data) upsert(batch);
}

// Filters live in the URL, so a filtered view can be bookmarked or shared.
const url = new URL(location.href);
statusFilter.value = url.searchParams.get("status") || "";
search.value = url.searchParams.get("q") || "";
byId("filters").addEventListener("submit", (event) => event.preventDefault());
for (const input of [statusFilter, search]) {
  input.addEventListener("input", () => {
    const next = new URL(location.href);
    for (const [name, value] of [["status", statusFilter.value], ["q", search.value.trim()]]) {
      if (value) next.searchParams.set(name, value);
      else next.searchParams.delete(name);
    }
    history.replaceState(null, "", next);
    render();
  });
}
more.addEventListener("click", () => load({ older: true }));

// Rates, ETAs and ages move with time even when no event comes.
setInterval(() => {
  for (const tr of body.rows) {
    const batch = batches.get(tr.dataset.id);
    if (!batch || !ACTIVE.has(batch.status)) continue;
    tr.querySelector(".rate").textContent = rate(throughput.rate(batch));
    tr.querySelector(".eta").textContent = duration(throughput.eta(batch));
  }
}, 1000);

await load();
subscribe({ topic: "batch", onEvent: upsert, fallback: { refresh, every: 2000 } });
