// A dataset: its stats, its samples a page at a time (the API's `after` cursor), search and
// filters, and one sample opened beside the table with its history (restore a version) and,
// for reviewers, an editor of its JSON. The whole view is in the address (filters, page,
// sample), so a link reopens it and back/forward walk it.
// Keyboard: j/k or the arrows move through the table, Enter opens, Esc closes.

import { ApiError, getJSON, patchJSON, postJSON } from "../api.js";
import { byId, fill, h, pageParams, stat } from "../dom.js";
import { DASH, ago, count, int, iso, usd } from "../format.js";
import { displayFor, renderSample, samplePreview } from "../sample-view.js";

const PAGE_SIZE = 50;
const { dataset_id: datasetId } = pageParams();
const api = `/api/datasets/${encodeURIComponent(datasetId)}`;

// The sample filters, as the API takes them (`GET .../samples`). ``stats``: the choices come
// from the dataset's counts; ``options``: fixed choices; neither: typed in.
const FILTERS = [
  { name: "topic", label: "Topic", stats: "by_topic" },
  { name: "sample_type", label: "Type", stats: "by_sample_type" },
  { name: "status", label: "Status", stats: "by_status" },
  { name: "model", label: "Model", stats: "by_model" },
  { name: "batch_id", label: "Batch", placeholder: "batch_…" },
  { name: "job_id", label: "Job", placeholder: "gen_…" },
  // A reviewer filtering a blind review by state is refused (403): the notice says why.
  { name: "review_state", label: "Review",
    options: ["unreviewed", "in_review", "approved", "edited", "rejected", "disputed"] },
];
// What the address holds besides the filters: the search, the page's cursor (`after` the
// last sample of the page before, or `before` the first of the page after) and the sample.
const VIEW_KEYS = ["q", ...FILTERS.map((f) => f.name), "after", "before", "sample"];

const body = byId("samples").querySelector("tbody");
const search = byId("filter-q");
let dataset = null;
let rows = []; // the samples of the table
let cursor = -1; // the row the keyboard is on
let opened = null; // the open sample
let shownQuery = null; // the samples query the table shows

// -- the address ------------------------------------------------------------------------------

function readView() {
  const params = new URLSearchParams(location.search);
  const view = {};
  for (const key of VIEW_KEYS) view[key] = params.get(key) || "";
  return view;
}

function viewUrl(view) {
  const params = new URLSearchParams();
  for (const key of VIEW_KEYS) if (view[key]) params.set(key, view[key]);
  const query = params.toString();
  return `${location.pathname}${query ? `?${query}` : ""}`;
}

/** Go to ``changes`` of the current view: a new history entry (``replace``: the same one). */
function go(changes, { replace = false } = {}) {
  const view = { ...readView(), ...changes };
  const url = viewUrl(view);
  if (url !== location.pathname + location.search) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }
  return show(view);
}

// -- stats and filters ----------------------------------------------------------------------

/** The values a count list names (samples without one are counted under null). */
function named(counts) {
  return counts.filter((c) => c.value !== null).length;
}

function renderStats() {
  const stats = dataset.stats;
  fill(byId("dataset-name"), dataset.name);
  fill(byId("crumb"), dataset.name);
  document.title = `${dataset.name} · datamill`;
  const created = h("time", { datetime: iso(dataset.created_at), title: iso(dataset.created_at) }, ago(dataset.created_at));
  fill(byId("description"), dataset.description ? `${dataset.description} · ` : "", h("code", {}, dataset.id), " · created ", created);
  fill(byId("stats"),
    stat("Samples", int(stats.samples)),
    stat("Deleted", int(stats.deleted_samples)),
    stat("Topics", int(named(stats.by_topic))),
    stat("Sample types", int(named(stats.by_sample_type))),
    stat("Models", int(named(stats.by_model))),
    stat("Tokens", count(stats.input_tokens + stats.output_tokens), `${count(stats.input_tokens)} in · ${count(stats.output_tokens)} out`),
    stat("Cost", usd(stats.cost_usd)));
}

function filterControl(filter, value) {
  const id = `filter-${filter.name}`;
  // Until the dataset's stats arrive, a stats filter offers its current value only.
  const counts = filter.stats ? dataset?.stats?.[filter.stats] ?? [] : null;
  let control;
  if (counts || filter.options) {
    const choices = counts
      ? counts.filter((c) => c.value !== null).map((c) => ({ value: c.value, text: `${c.value} (${int(c.count)})` }))
      : filter.options.map((option) => ({ value: option, text: option }));
    if (value && !choices.some((c) => c.value === value)) choices.push({ value, text: value });
    control = h("select", { id, name: filter.name },
      h("option", { value: "" }, "All"),
      choices.map((c) => h("option", { value: c.value, selected: c.value === value }, c.text)));
  } else {
    control = h("input", { type: "text", id, name: filter.name, value, placeholder: filter.placeholder || "", autocomplete: "off" });
  }
  return h("label", {}, filter.label, " ", control);
}

function renderFilters(view) {
  search.value = view.q;
  fill(byId("filter-fields"), FILTERS.map((f) => filterControl(f, view[f.name])));
}

function formView() {
  const view = { q: search.value.trim() };
  for (const filter of FILTERS) view[filter.name] = byId(`filter-${filter.name}`).value.trim();
  return view;
}

renderFilters(readView()); // at once, so the form works before the stats arrive

// -- the table --------------------------------------------------------------------------------

function samplesQuery(view) {
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  for (const key of ["q", ...FILTERS.map((f) => f.name)]) if (view[key]) query.set(key, view[key]);
  if (view.before) {
    query.set("order", "asc");
    query.set("after", view.before);
  } else if (view.after) query.set("after", view.after);
  return query.toString();
}

function row(sample, index) {
  const open = (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return; // a new tab
    event.preventDefault();
    openSample(sample.id, { from: index });
  };
  // A click anywhere on the row opens the sample, as its link does.
  const click = (event) => {
    if (!event.target.closest("a") && !window.getSelection()?.toString()) open(event);
  };
  return h("tr", { dataset: { id: sample.id }, onclick: click },
    h("td", { class: "id", "data-label": "Sample" }, h("div", {},
      h("a", { href: viewUrl({ ...readView(), sample: sample.id }), onclick: open }, sample.id),
      h("span", { class: "sub preview" }, samplePreview(sample.content)))),
    h("td", { "data-label": "Topic" }, sample.topic ?? DASH),
    h("td", { "data-label": "Type" }, sample.sample_type ?? DASH),
    h("td", { "data-label": "Status" }, h("span", { class: "badge", dataset: { status: sample.status } }, sample.status)),
    h("td", { "data-label": "Model" }, sample.model ?? DASH),
    h("td", { class: "num", "data-label": "Created" },
      h("time", { datetime: iso(sample.created_at), title: iso(sample.created_at) }, ago(sample.created_at))));
}

async function loadTable(view) {
  const query = samplesQuery(view);
  const page = await getJSON(`${api}/samples?${query}`);
  let samples = page.data;
  let newer = Boolean(view.after);
  let older = page.has_more;
  if (view.before) {
    if (!page.has_more) {
      // Back at the newest samples: show the first page whole.
      const first = { ...view, before: "", after: "" };
      history.replaceState(null, "", viewUrl(first));
      return loadTable(first);
    }
    samples = [...samples].reverse();
    newer = true;
    older = true;
  }
  // The rows and the filters show at once (their choices come from the dataset's stats):
  // what is typed once the rows show stays.
  await datasetRead;
  renderFilters(view);
  shownQuery = query;
  rows = samples;
  fill(body, rows.map(row));
  byId("empty").hidden = rows.length > 0;
  byId("newer").hidden = !newer;
  byId("older").hidden = !older;
  const filtered = ["q", ...FILTERS.map((f) => f.name)].some((key) => view[key]);
  byId("summary").textContent = rows.length
    ? `${int(rows.length)} samples${filtered ? " matching" : ""}${newer || older ? ", a page of them" : ""}, newest first.`
    : "";
  cursor = rows.findIndex((s) => s.id === view.sample);
  markCursor();
}

function markCursor({ scroll = false } = {}) {
  [...body.rows].forEach((tr, i) => {
    const on = i === cursor;
    tr.classList.toggle("selected", on);
    if (on) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
    if (on && scroll) tr.scrollIntoView({ block: "nearest" });
  });
}

// -- one sample -----------------------------------------------------------------------------

function showError(box, error) {
  box.hidden = false;
  box.textContent = error instanceof ApiError
    ? `${error.message}${error.param ? ` (${error.param})` : ""}`
    : String(error.message || error);
}

async function renderOpened() {
  const display = await displayFor(opened, dataset?.task_schema);
  fill(byId("sample-title"), "Sample ", h("code", {}, opened.id));
  fill(byId("sample-body"), renderSample(opened, display));
  byId("edit").hidden = Boolean(opened.deleted_at);
}

function versionEntry(version, latest) {
  // No key: made by a job or an import, or changed in local mode.
  const who = version.changed_by
    ? [" by ", h("code", {}, version.changed_by)]
    : version.action === "created" ? "" : " in local mode";
  const what = version.action === "restored"
    ? `restored version ${version.restored_from}`
    : version.action === "edited" ? `edited ${version.changed.join(", ")}` : "created";
  return h("li", { class: "version", dataset: { version: version.version } },
    h("details", {},
      h("summary", {},
        h("strong", {}, `v${version.version}`), ` ${what}`, who, " · ",
        h("time", { datetime: iso(version.changed_at), title: iso(version.changed_at) }, ago(version.changed_at)),
        version.version === latest ? h("span", { class: "badge ok" }, "current") : null),
      h("pre", { class: "json" }, JSON.stringify({ content: version.content, topic: version.topic, sample_type: version.sample_type, metadata: version.metadata }, null, 2))),
    version.version === latest || opened.deleted_at ? null : h("button", {
      type: "button",
      class: "button small restore",
      "data-needs": "reviewer",
      "aria-label": `Restore version ${version.version}`,
      onclick: () => restoreVersion(version.version),
    }, "Restore"));
}

async function loadHistory() {
  const sampleId = opened.id;
  const versions = (await getJSON(`${api}/samples/${encodeURIComponent(sampleId)}/history`)).data;
  if (opened?.id !== sampleId) return;
  const latest = Math.max(...versions.map((v) => v.version));
  fill(byId("history"), versions.length
    ? h("ol", { class: "history", reversed: true }, [...versions].reverse().map((v) => versionEntry(v, latest)))
    : h("p", { class: "muted" }, "No version recorded."));
}

async function restoreVersion(version) {
  try {
    opened = await postJSON(`${api}/samples/${encodeURIComponent(opened.id)}/history/${version}/restore`);
    await afterChange();
  } catch (error) {
    showError(byId("sample-error"), error); // a 409: another live sample has that content
  }
}

/** The open sample changed: show it, its history and its row anew. */
async function afterChange() {
  closeEditor();
  await renderOpened();
  await loadHistory();
  const index = rows.findIndex((s) => s.id === opened.id);
  if (index >= 0) {
    rows[index] = opened;
    body.rows[index].replaceWith(row(opened, index));
    markCursor();
  }
}

async function openSample(sampleId, { from = null, replace = false } = {}) {
  if (from !== null) cursor = from;
  await go({ sample: sampleId }, { replace });
}

async function showSample(sampleId) {
  const pane = byId("sample");
  if (!sampleId) {
    opened = null;
    pane.hidden = true;
    byId("view").classList.remove("with-sample");
    closeEditor();
    return;
  }
  if (opened?.id === sampleId) return;
  const sample = await getJSON(`${api}/samples/${encodeURIComponent(sampleId)}`);
  opened = sample;
  closeEditor();
  pane.hidden = false;
  byId("view").classList.add("with-sample");
  fill(byId("history"), h("p", { class: "muted" }, "Loading…"));
  await renderOpened();
  if (!window.matchMedia("(min-width: 1100px)").matches) pane.scrollIntoView({ block: "start" });
  await loadHistory();
}

// -- the editor -----------------------------------------------------------------------------

const EDITABLE = ["content", "topic", "sample_type", "metadata"];

function openEditor() {
  const editable = Object.fromEntries(EDITABLE.map((key) => [key, opened[key] ?? null]));
  byId("edit-json").value = JSON.stringify(editable, null, 2);
  byId("edit-error").hidden = true;
  byId("editor").hidden = false;
  byId("edit").hidden = true;
  byId("edit-json").focus();
}

function closeEditor() {
  byId("sample-error").hidden = true;
  byId("editor").hidden = true;
  byId("edit-error").hidden = true;
  byId("edit").hidden = Boolean(opened?.deleted_at);
}

/** The fields of the editor's JSON that differ from the sample's: the PATCH body. */
function changes(text) {
  let edited;
  try {
    edited = JSON.parse(text);
  } catch (error) {
    throw new Error(`Invalid JSON: ${error.message}`);
  }
  if (edited === null || typeof edited !== "object" || Array.isArray(edited)) {
    throw new Error("Invalid JSON: give an object with content, topic, sample_type and/or metadata.");
  }
  const unknown = Object.keys(edited).filter((key) => !EDITABLE.includes(key));
  if (unknown.length) throw new Error(`Unknown field ${unknown.map((k) => JSON.stringify(k)).join(", ")}: only ${EDITABLE.join(", ")} can be edited.`);
  const patch = {};
  for (const key of EDITABLE) {
    if (key in edited && JSON.stringify(edited[key]) !== JSON.stringify(opened[key] ?? null)) patch[key] = edited[key];
  }
  return patch;
}

byId("editor").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = byId("edit-error");
  box.hidden = true;
  let patch;
  try {
    patch = changes(byId("edit-json").value);
  } catch (error) {
    showError(box, error);
    return;
  }
  if (!Object.keys(patch).length) {
    showError(box, new Error("Nothing changed."));
    return;
  }
  byId("save").disabled = true;
  try {
    opened = await patchJSON(`${api}/samples/${encodeURIComponent(opened.id)}`, patch);
    await afterChange();
    byId("edit").focus();
  } catch (error) {
    showError(box, error);
  } finally {
    byId("save").disabled = false;
  }
});
byId("edit").addEventListener("click", openEditor);
byId("cancel-edit").addEventListener("click", () => { closeEditor(); byId("edit").focus(); });
byId("close").addEventListener("click", () => go({ sample: "" }));

// -- the view as a whole ----------------------------------------------------------------------

let showing = Promise.resolve();

/** Show ``view``: the table when its query changed, the sample when it changed. */
function show(view) {
  showing = showing.then(async () => {
    byId("notice").hidden = true;
    if (samplesQuery(view) !== shownQuery) {
      try {
        await loadTable(view);
      } catch (error) {
        renderFilters(view);
        // A search the API refuses (its message names `q`), or no such dataset: no rows.
        rows = [];
        shownQuery = null;
        fill(body);
        for (const id of ["newer", "older", "empty"]) byId(id).hidden = true;
        byId("summary").textContent = "";
        showError(byId("notice"), error);
      }
    }
    try {
      cursor = view.sample ? rows.findIndex((s) => s.id === view.sample) : cursor;
      markCursor({ scroll: true });
      await showSample(view.sample);
    } catch (error) {
      showError(byId("notice"), error);
    }
  });
  return showing;
}

byId("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  go({ ...formView(), after: "", before: "", sample: "" });
});
byId("filter-fields").addEventListener("change", (event) => {
  if (event.target.tagName === "SELECT") byId("filters").requestSubmit();
});
byId("clear").addEventListener("click", () => {
  const cleared = Object.fromEntries(VIEW_KEYS.map((key) => [key, ""]));
  go(cleared);
});
byId("older").addEventListener("click", () => go({ after: rows.at(-1).id, before: "", sample: "" }));
byId("newer").addEventListener("click", () => go({ before: rows[0].id, after: "", sample: "" }));
window.addEventListener("popstate", () => show(readView()));

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function move(step) {
  if (!rows.length) return;
  cursor = Math.min(rows.length - 1, Math.max(0, cursor + step));
  markCursor({ scroll: true });
  // With a sample open, moving opens the next one in its place.
  if (opened) openSample(rows[cursor].id, { replace: true });
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "Escape") {
    if (!byId("editor").hidden) {
      closeEditor();
      byId("edit").focus();
    } else if (opened) go({ sample: "" });
    else return;
    event.preventDefault();
    return;
  }
  if (typing(event.target)) return;
  if (event.key === "j" || event.key === "ArrowDown") move(1);
  else if (event.key === "k" || event.key === "ArrowUp") move(-1);
  else if (event.key === "Enter" && cursor >= 0 && !(event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement)) {
    openSample(rows[cursor].id);
  } else return;
  event.preventDefault();
});

// The dataset and the first page of samples are read at once.
const datasetRead = getJSON(api).then(
  (answer) => { dataset = answer; renderStats(); },
  (error) => {
    showError(byId("notice"), error);
    if (error.status === 404) for (const id of ["overview", "filters", "view"]) byId(id).hidden = true;
  });
await show(readView());
