// Generation: start a job from a spec (with a preview first), watch every job's progress
// live from `generation` events, stop and resume one, and see its coverage: each topic x
// sample type cell's accepted samples against its target, as a chart, with rejections.

import { ApiError, getJSON, postJSON } from "../api.js";
import { byId, fill, h } from "../dom.js";
import { DASH, ago, int, percent, usd } from "../format.js";
import { subscribe } from "../live.js";

const TONE = { running: "info", completed: "ok", stopped: "idle", budget_exhausted: "warn", failed: "bad" };
const jobs = new Map();
let selected = null; // the job shown below the list, with its cells
const body = byId("jobs").querySelector("tbody");

function statusBadge(status) {
  return h("span", { class: `badge ${TONE[status] || "idle"}`, dataset: { status } }, status.replace("_", " "));
}

function bar(accepted, target, label) {
  const share = target ? Math.min(100, (100 * accepted) / target) : 0;
  return h("div", { class: "progress" },
    h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": target || 1, "aria-valuenow": accepted, "aria-label": label },
      h("span", { class: "done", style: { width: `${share}%` } })),
    h("span", { class: "label" }, `${int(accepted)} / ${int(target)}`));
}

function row(job) {
  return h("tr", { dataset: { id: job.id }, class: selected?.id === job.id ? "selected" : null },
    h("td", { "data-label": "Job" },
      h("a", { href: `#${job.id}`, class: "mono", onclick: (event) => { event.preventDefault(); select(job.id); } }, job.id),
      h("span", { class: "sub" }, job.name)),
    h("td", { "data-label": "Status" }, statusBadge(job.status)),
    h("td", { "data-label": "Progress" }, bar(job.accepted, job.target ?? 0, `${int(job.accepted)} samples accepted`)),
    h("td", { class: "num", "data-label": "Rejected" }, int(job.rejected)),
    h("td", { class: "num", "data-label": "Duplicates" }, int(job.duplicates)),
    h("td", { class: "num", "data-label": "Cost" }, usd(job.cost)),
    h("td", { "data-label": "Updated" }, ago(job.updated_at)),
  );
}

function renderList() {
  const shown = [...jobs.values()].sort((a, b) => b.created_at - a.created_at);
  fill(body, shown.map(row));
  byId("empty").hidden = shown.length > 0;
}

function stat(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", {}, value));
}

/** The coverage chart: a row per topic, a column per sample type, each cell's bar filled
 *  by its accepted samples against its target. */
function coverageChart(cells) {
  const types = [...new Set(cells.map((c) => c.sample_type))];
  const topics = [...new Set(cells.map((c) => c.topic))];
  const byKey = new Map(cells.map((c) => [`${c.topic}\u0000${c.sample_type}`, c]));
  const head = h("tr", {}, h("th", { scope: "col" }, "Topic"), types.map((t) => h("th", { scope: "col" }, t)));
  const rows = topics.map((topic) => h("tr", {},
    h("th", { scope: "row" }, topic),
    types.map((type) => {
      const cell = byKey.get(`${topic}\u0000${type}`);
      if (!cell) return h("td", { "data-label": type }, DASH);
      const full = cell.accepted >= cell.target;
      return h("td", { class: full ? "cell full" : "cell", "data-label": type, dataset: { topic, type, accepted: cell.accepted, target: cell.target } },
        bar(cell.accepted, cell.target, `${topic}, ${type}: ${cell.accepted} of ${cell.target}`),
        cell.in_flight ? h("span", { class: "sub" }, `${int(cell.in_flight)} in flight`) : null);
    })));
  return h("div", { class: "table-wrap" }, h("table", { class: "data coverage" }, h("thead", {}, head), h("tbody", {}, rows)));
}

function rejections(cells) {
  const totals = {};
  for (const cell of cells) for (const [reason, n] of Object.entries(cell.rejected || {})) totals[reason] = (totals[reason] || 0) + n;
  const entries = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return h("p", { class: "muted" }, "None.");
  return h("ul", { class: "rejections" }, entries.map(([reason, n]) => h("li", { dataset: { reason } }, h("code", {}, reason), ` ${int(n)}`)));
}

function renderJob() {
  const section = byId("job");
  if (!selected) { section.hidden = true; return; }
  section.hidden = false;
  const job = selected;
  fill(byId("job-title"), `Job `, h("code", {}, job.id), " ", statusBadge(job.status));
  const answers = job.accepted + job.rejected + job.duplicates;
  fill(byId("job-stats"),
    stat("Accepted", `${int(job.accepted)} of ${int(job.target)}`),
    stat("Cells full", `${int(job.cells.filter((c) => c.accepted >= c.target).length)} of ${int(job.cells.length)}`),
    stat("Requests", int(job.requests)),
    stat("Rejected", int(job.rejected)),
    stat("Duplicate rate", answers ? percent(job.duplicates / answers) : DASH),
    stat("Cost", usd(job.cost)),
    stat("Dataset", h("code", {}, job.dataset_id)),
    stat("Stopped by", job.stop_reason || DASH));
  byId("stop").hidden = job.status !== "running";
  byId("resume").hidden = !["stopped", "budget_exhausted", "failed"].includes(job.status);
  fill(byId("coverage"), coverageChart(job.cells));
  fill(byId("rejections"), rejections(job.cells));
}

async function select(jobId) {
  selected = await getJSON(`/api/generation/jobs/${encodeURIComponent(jobId)}`);
  byId("stuck").hidden = true;
  history.replaceState(null, "", `#${jobId}`);
  renderList();
  renderJob();
}

async function loadJobs() {
  const answer = await getJSON("/api/generation/jobs?limit=100");
  for (const job of answer.data) jobs.set(job.id, { ...jobs.get(job.id), ...job, target: jobs.get(job.id)?.target ?? job.target });
  // A list leaves the cells out: the targets come from each job once.
  await Promise.all(answer.data.filter((j) => !j.target).map(async (j) => {
    const full = await getJSON(`/api/generation/jobs/${encodeURIComponent(j.id)}`);
    jobs.set(j.id, { ...jobs.get(j.id), target: full.target });
  }));
  renderList();
}

/** A `generation` event: status, progress (with the cells that changed) or stuck. */
function update(event) {
  const known = jobs.get(event.id) || { id: event.id, created_at: Date.now() / 1000 };
  if (event.type === "stuck") {
    if (selected?.id === event.id) {
      const box = byId("stuck");
      box.hidden = false;
      box.textContent = `Stuck: ${event.message}.`;
    }
    return;
  }
  // The event carries the job as the API renders it (a progress event without its cells).
  const merged = { ...known, ...event };
  delete merged.cells;
  delete merged.type;
  jobs.set(event.id, merged);
  if (selected?.id === event.id) {
    const cells = new Map(selected.cells.map((c) => [`${c.topic}\u0000${c.sample_type}`, c]));
    for (const cell of event.changed_cells || []) cells.set(`${cell.topic}\u0000${cell.sample_type}`, cell);
    selected = { ...selected, ...merged, cells: [...cells.values()] };
    renderJob();
  }
  if (!jobs.get(event.id).target) loadJobs().catch(() => {});
  // A status change: read the job whole (its cells as they ended).
  if (event.type === "status" && selected?.id === event.id) select(event.id).catch(() => {});
  renderList();
}

function specBody() {
  const text = byId("spec").value;
  const body = { spec_text: text };
  const dataset = byId("dataset").value.trim();
  const budget = byId("budget-usd").value;
  return { body, dataset, budget };
}

function showError(error) {
  const box = byId("start-error");
  box.hidden = false;
  box.textContent = error instanceof ApiError ? `${error.message}${error.param ? ` (${error.param})` : ""}` : String(error);
}

byId("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  byId("start-error").hidden = true;
  const { body, dataset, budget } = specBody();
  if (dataset) body.dataset = dataset;
  if (budget) body.budget = { usd: Number(budget) };
  byId("start").disabled = true;
  try {
    const job = await postJSON("/api/generation/jobs", body);
    jobs.set(job.id, job);
    await select(job.id);
  } catch (error) {
    showError(error);
  } finally {
    byId("start").disabled = false;
  }
});

byId("preview").addEventListener("click", async () => {
  byId("start-error").hidden = true;
  const target = byId("preview-result");
  fill(target, h("p", { class: "muted" }, "Running one request per sample type…"));
  target.hidden = false;
  try {
    const report = await postJSON("/api/generation/preview", specBody().body);
    fill(target,
      h("p", { class: "summary", id: "estimate" }, `Estimate: ${int(report.estimate.requests)} requests for ${int(report.estimate.target)} samples, about ${usd(report.estimate.cost_usd)}.`),
      report.samples.map((s) => h("details", { class: "preview-sample", dataset: { type: s.sample_type } },
        h("summary", {}, `${s.sample_type}: `, s.accepted ? h("span", { class: "badge ok" }, "accepted") : h("span", { class: "badge bad" }, s.rejection)),
        h("pre", {}, s.prompt.map((m) => `${m.role}: ${m.content}`).join("\n\n")),
        h("pre", {}, JSON.stringify(s.sample, null, 2)),
        s.detail ? h("p", { class: "muted" }, s.detail) : null)));
  } catch (error) {
    target.hidden = true;
    showError(error);
  }
});

byId("stop").addEventListener("click", async () => {
  selected = { ...selected, ...(await postJSON(`/api/generation/jobs/${encodeURIComponent(selected.id)}/stop`)) };
  jobs.set(selected.id, { ...jobs.get(selected.id), ...selected });
  renderJob();
  renderList();
});

byId("resume").addEventListener("click", async () => {
  selected = { ...selected, ...(await postJSON(`/api/generation/jobs/${encodeURIComponent(selected.id)}/resume`)) };
  jobs.set(selected.id, { ...jobs.get(selected.id), ...selected });
  renderJob();
  renderList();
});

await loadJobs();
const wanted = location.hash.slice(1);
if (wanted && jobs.has(wanted)) await select(wanted);
subscribe({
  topic: "generation",
  onEvent: update,
  fallback: { refresh: async () => { await loadJobs(); if (selected) await select(selected.id); }, every: 2000 },
});
