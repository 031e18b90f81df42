// Datasets: every live dataset of the project, newest first, with its sample count; each
// opens its own page (samples, search, filters, one sample with its history).
// Datasets are not on the event stream: the list is read when the page opens.

import { getJSON } from "../api.js";
import { byId, fill, h } from "../dom.js";
import { ago, int, iso } from "../format.js";

const PAGE_SIZE = 100;
const body = byId("datasets").querySelector("tbody");
const more = byId("more");
const shown = [];
let last = null; // the cursor for "Load more datasets"

function when(unix) {
  return h("time", { datetime: iso(unix), title: iso(unix) }, ago(unix));
}

function row(dataset) {
  return h("tr", { dataset: { id: dataset.id } },
    h("td", { class: "id", "data-label": "Dataset" }, h("div", {},
      h("a", { href: `/datasets/${encodeURIComponent(dataset.id)}` }, dataset.name),
      h("span", { class: "sub" }, dataset.description || dataset.id))),
    h("td", { class: "num", "data-label": "Samples" }, int(dataset.sample_count)),
    h("td", { class: "num", "data-label": "Created" }, when(dataset.created_at)),
    h("td", { class: "num", "data-label": "Updated" }, when(dataset.updated_at)));
}

async function load() {
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  if (last) query.set("after", last);
  const page = await getJSON(`/api/datasets?${query}`);
  shown.push(...page.data);
  last = page.last_id ?? last;
  more.hidden = !page.has_more;
  fill(body, shown.map(row));
  byId("empty").hidden = shown.length > 0;
  const samples = shown.reduce((sum, d) => sum + d.sample_count, 0);
  byId("summary").textContent = shown.length
    ? `${int(shown.length)} dataset${shown.length === 1 ? "" : "s"}${page.has_more ? " loaded" : ""}, ${int(samples)} samples.`
    : "";
}

function failed(error) {
  const notice = byId("notice");
  notice.hidden = false;
  notice.textContent = `Could not read the datasets: ${error.message}`;
}

more.addEventListener("click", () => load().catch(failed));
await load().catch(failed);
