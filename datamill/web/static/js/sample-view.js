// One sample, shown the way its task schema says: the content fields of the schema's
// `display` (in order, each as text, markdown, code, chat or JSON), else the whole content
// as formatted JSON; then its facts (topic, type, status, model, metadata, provenance).
// Shared by every page that shows a sample (the Datasets page, the review page).
//
// Samples are untrusted text: everything goes in through dom.js as text, never as HTML, so
// a sample holding `<script>` or `<img onerror>` shows those characters and runs nothing.

import { getJSON } from "./api.js";
import { h } from "./dom.js";
import { DASH, ago, iso } from "./format.js";

// Where the project's task schemas are listed (and one is read by its name): a schema's
// `display` says how its samples look. The page renders it in `data-schemas` when the
// server has the registry (empty: none, and contents show as JSON).
const SCHEMAS_URL = document.querySelector("[data-schemas]")?.dataset.schemas || "";

const PREVIEW_CHARS = 140;

/** The value at ``path`` in ``content``: a top-level key, or a dotted path into objects. */
export function fieldValue(content, path) {
  if (content && Object.hasOwn(content, path)) return { found: true, value: content[path] };
  let value = content;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, part)) return { found: false };
    value = value[part];
  }
  return { found: true, value };
}

function asText(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** A chat message's text: a string, or the text parts of a list of content parts. */
function messageText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (part && typeof part.text === "string" ? part.text : JSON.stringify(part))).join("\n");
  }
  return asText(content);
}

function chat(value) {
  if (!Array.isArray(value)) return json(value);
  return h("ol", { class: "chat" }, value.map((message) => {
    const role = message && typeof message.role === "string" ? message.role : "?";
    return h("li", { class: "message", dataset: { role } },
      h("span", { class: "role" }, role),
      h("div", { class: "text" }, messageText(message?.content)));
  }));
}

const KINDS = {
  text: (value) => h("div", { class: "text" }, asText(value)),
  // Markdown is shown as its source text, whitespace kept: no markup from a sample reaches
  // the page.
  markdown: (value) => h("div", { class: "text markdown" }, asText(value)),
  code: (value) => h("pre", { class: "code" }, h("code", {}, asText(value))),
  chat,
  json,
};

/** A sample's content, by the schema's display fields (``display.fields``), or as JSON. */
export function sampleContent(content, display = null) {
  const fields = display?.fields?.length
    ? display.fields
    : display
      ? Object.keys(content || {}).map((field) => ({ field, kind: "json" }))
      : null;
  if (!fields) return h("div", { class: "sample-content" }, json(content));
  return h("div", { class: "sample-content" }, fields.map(({ field, label, kind }) => {
    const { found, value } = fieldValue(content, field);
    const show = KINDS[kind] || KINDS.text;
    return h("section", { class: `field kind-${kind || "text"}`, dataset: { field } },
      h("h4", {}, label || field),
      found ? show(value) : h("p", { class: "muted" }, "(not in this sample)"));
  }));
}

/** The strings of a value, depth first: of a chat message, its content only. */
function* texts(value) {
  if (typeof value === "string") yield value;
  else if (typeof value === "number" || typeof value === "boolean") yield String(value);
  else if (Array.isArray(value)) for (const item of value) yield* texts(item);
  else if (value && typeof value === "object") {
    if (typeof value.role === "string" && "content" in value) yield* texts(value.content);
    else for (const item of Object.values(value)) yield* texts(item);
  }
}

/** A line of text for a table: the first display field's text, or the content's, cut
 *  short. */
export function samplePreview(content, display = null) {
  const first = display?.fields?.[0];
  const found = first ? fieldValue(content, first.field) : { found: false };
  let text = "";
  for (const part of texts(found.found ? found.value : content)) {
    text += `${text ? " · " : ""}${part.replace(/\s+/g, " ").trim()}`;
    if (text.length > PREVIEW_CHARS) break;
  }
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS - 1)}…` : text;
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? DASH)];
}

/** A sample's facts: what it is, where it came from, its metadata and provenance. */
export function sampleFacts(sample) {
  const when = sample.created_at
    ? h("time", { datetime: iso(sample.created_at), title: iso(sample.created_at) }, ago(sample.created_at))
    : DASH;
  return h("div", { class: "sample-facts" },
    h("dl", { class: "details" },
      fact("Id", h("code", {}, sample.id)),
      fact("Topic", sample.topic),
      fact("Type", sample.sample_type),
      fact("Status", h("span", { class: "badge", dataset: { status: sample.status } }, sample.status)),
      sample.review_state ? fact("Review", sample.review_state) : null,
      fact("Model", sample.model),
      fact("Created", when),
      sample.deleted_at ? fact("Deleted", ago(sample.deleted_at)) : null),
    h("details", { class: "metadata", open: sample.metadata ? true : null },
      h("summary", {}, "Metadata"), sample.metadata ? json(sample.metadata) : h("p", { class: "muted" }, "None.")),
    h("details", { class: "provenance" },
      h("summary", {}, "Provenance"), sample.provenance ? json(sample.provenance) : h("p", { class: "muted" }, "None.")));
}

/** A sample's card: its content by ``display``, then its facts. */
export function renderSample(sample, display = null) {
  const card = h("article", { class: "sample-card", dataset: { sampleId: sample.id, schema: display ? "yes" : "no" } },
    sampleContent(sample.content, display),
    sampleFacts(sample));
  scopedCss(card, display?.css);
  return card;
}

// -- the schema's display, read once per page ---------------------------------------------

let registry = null; // Promise of Map name -> schema (as listed), read on first need

function readRegistry() {
  // One read of the project's schemas; a server without the registry (404) has none, and
  // the content shows as JSON.
  registry ??= getJSON(SCHEMAS_URL).then(
    (answer) => new Map((answer.data || []).map((schema) => [schema.name, schema])),
    () => new Map());
  return registry;
}

function displayNamed(schemas, name) {
  // The list holds each schema's latest version whole (``definition``).
  return schemas.get(name)?.definition?.display ?? null;
}

/** The display of ``sample``'s schema: the one its answer carries, else the schema named
 *  by its ``sample_type``, else the dataset's default schema (``fallback``), else null. */
export async function displayFor(sample, fallback = null) {
  if (sample.schema?.display) return sample.schema.display;
  if (!SCHEMAS_URL || (!sample.sample_type && !fallback)) return null;
  const schemas = await readRegistry();
  for (const name of [sample.sample_type, fallback]) {
    const display = name ? displayNamed(schemas, name) : null;
    if (display) return display;
  }
  return null;
}

// A schema's CSS applies inside its sample's card only (CSS `@scope`), through a constructed
// stylesheet: the page's Content-Security-Policy allows no <style> element.
let cardNumber = 0;

function scopedCss(card, css) {
  if (!css || !document.adoptedStyleSheets) return;
  let depth = 0;
  for (const char of css) {
    depth += char === "{" ? 1 : char === "}" ? -1 : 0;
    if (depth < 0) return; // it would close the scope: refused
  }
  if (depth !== 0) return;
  cardNumber += 1;
  card.dataset.scope = String(cardNumber);
  const sheet = new CSSStyleSheet();
  try {
    sheet.replaceSync(`@scope (.sample-card[data-scope="${cardNumber}"]) { ${css} }`);
  } catch {
    return;
  }
  // One sheet per shown card: drop those of cards no longer in the page.
  document.adoptedStyleSheets = [
    ...document.adoptedStyleSheets.filter((s) => !s.datamillCard || document.querySelector(`.sample-card[data-scope="${s.datamillCard}"]`)),
    Object.assign(sheet, { datamillCard: cardNumber }),
  ];
}
