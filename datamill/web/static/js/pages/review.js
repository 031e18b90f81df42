// Reviewing a dataset from the keyboard: reserve a few samples (`review/next`), show one at a
// time by its schema's display, answer its schema's questions with one key per decision, and
// show the next at once (the next batch is reserved before the last one runs out).
// Blind by construction: the page reads no review but the one it writes.
// Keys: a approve, r reject (1-9 a reason, or typed), 1-5 rating, l labels (then 1-9),
// c comment, e edit (Ctrl+Enter), Enter submit, s skip, u undo, ? the keys, Esc leaves.

import { ApiError, getJSON, postJSON } from "../api.js";
import { byId, fill, h, pageParams, stat } from "../dom.js";
import { int } from "../format.js";
import { displayFor, renderSample } from "../sample-view.js";

const BATCH = 5; // samples reserved at a time
const LOW = 2; // reserve more when this few are left (the shown one included)
const { dataset_id: datasetId } = pageParams();
const api = `/api/datasets/${encodeURIComponent(datasetId)}`;

let queue = []; // reserved items (`dataset.review_item`) not yet reviewed nor skipped
let current = null; // the shown item
let answer = null; // what the reviewer gave for it so far
let expiresAt = null;
let done = 0; // reviews written in this session
let last = null; // the last review written: {item, answer}, for undo
let fetching = null; // the reservation in flight
let exhausted = false; // `next` had nothing more to give
const seen = new Set(); // reviewed or skipped in this session: never shown again
let focusedLabels = -1; // the labels question the number keys answer (-1: the rating)

// -- reading ----------------------------------------------------------------------------------

function showError(error) {
  const box = byId("error");
  box.hidden = false;
  box.textContent = error instanceof ApiError
    ? `${error.message}${error.param ? ` (${error.param})` : ""}`
    : String(error.message || error);
}

function clearError() {
  byId("error").hidden = true;
}

async function loadProgress() {
  try {
    const progress = await getJSON(`${api}/review`);
    const counts = progress.counts;
    const left = (counts.unreviewed || 0) + (counts.in_review || 0);
    fill(byId("progress"),
      stat("Done", int(done), "this session"),
      stat("Left", int(left), "in the queue"),
      stat("Samples", int(progress.samples)));
  } catch (error) {
    byId("notice").hidden = false;
    byId("notice").textContent = error.message;
  }
}

/** Reserve more samples (the ones held come back too: only new ones are queued). */
function reserve() {
  fetching ??= (async () => {
    try {
      const answer = await postJSON(`${api}/review/next`, { limit: BATCH });
      expiresAt = answer.expires_at;
      const held = new Map([current, ...queue].filter(Boolean).map((item) => [item.sample.id, item]));
      const again = [];
      let fresh = 0;
      for (const item of answer.data) {
        if (seen.has(item.sample.id)) again.push(item.sample.id);
        else if (held.has(item.sample.id)) held.get(item.sample.id).reserved_until = item.reserved_until; // renewed
        else {
          queue.push(item);
          fresh += 1;
        }
      }
      // A skipped sample offered again goes back at once; nothing new: the queue is dry.
      if (again.length) postJSON(`${api}/review/release`, { sample_ids: again }).catch(() => {});
      exhausted = fresh === 0;
      showExpiry();
    } finally {
      fetching = null;
    }
  })();
  return fetching;
}

function showExpiry() {
  const until = current?.reserved_until ?? expiresAt;
  if (!until) {
    byId("expiry").textContent = current ? "Assigned to you" : "";
    return;
  }
  const at = new Date(until * 1000);
  byId("expiry").textContent = `Reserved until ${at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
  byId("expiry").title = at.toISOString();
}

// -- one sample -----------------------------------------------------------------------------

function blankAnswer() {
  return { decision: null, reason: "", rating: null, labels: {}, texts: {}, edit: null };
}

function question(kind) {
  return current.questions.find((q) => q.kind === kind) || null;
}

async function advance() {
  current = queue.shift() || null;
  answer = blankAnswer();
  focusedLabels = -1;
  if (!current) {
    // Nothing held: ask once more (others may have given samples back) before saying so.
    await reserve().catch(showError);
    current = queue.shift() || null;
  } else if (queue.length + 1 <= LOW && !exhausted) {
    reserve().catch(showError); // before the queue runs out, in the background
  }
  await render();
}

async function render() {
  byId("undo").disabled = !last;
  clearError();
  if (!current) {
    byId("view").hidden = true;
    byId("empty").hidden = false;
    byId("empty").textContent = "Nothing left for you to review in this dataset.";
    byId("expiry").textContent = "";
    return;
  }
  byId("view").hidden = false;
  byId("empty").hidden = true;
  byId("review").hidden = false;
  // Blind: the review state is not shown here (it would hint at other reviewers' answers).
  const sample = { ...current.sample, review_state: null };
  const display = await displayFor({ ...sample, sample_type: current.schema_name }, current.sample.sample_type);
  fill(byId("sample-title"), "Sample ", h("code", {}, sample.id));
  fill(byId("sample-body"), renderSample(sample, display));
  showExpiry();
  renderQuestions();
  closeEditor();
  byId("review").focus();
}

function pressed(on) {
  return on ? "true" : "false";
}

function decisionControl(q) {
  const reasons = answer.decision === "reject"
    ? h("div", { class: "reasons", id: "reasons" },
      q.reasons.length
        ? h("ol", { class: "choices" }, q.reasons.map((reason, i) => h("li", {},
          h("button", { type: "button", class: "button small", dataset: { reason }, onclick: () => submitReason(reason) },
            h("kbd", {}, String(i + 1)), " ", reason))))
        : null,
      h("label", {}, q.reasons.length ? "Or type a reason, then Enter" : "The reason, then Enter",
        h("input", { type: "text", id: "reason", value: answer.reason, autocomplete: "off", oninput: (e) => { answer.reason = e.target.value; } })))
    : null;
  return h("fieldset", { class: "question", dataset: { kind: "decision", name: q.name } },
    h("legend", {}, q.prompt || q.name),
    h("div", { class: "choices" },
      h("button", { type: "button", class: "button", id: "approve", "aria-pressed": pressed(answer.decision === "approve"), onclick: () => decide("approve") }, h("kbd", {}, "a"), " Approve"),
      h("button", { type: "button", class: "button", id: "reject", "aria-pressed": pressed(answer.decision === "reject"), onclick: () => decide("reject") }, h("kbd", {}, "r"), " Reject")),
    reasons);
}

function ratingControl(q) {
  return h("fieldset", { class: "question", dataset: { kind: "rating", name: q.name } },
    h("legend", {}, q.prompt || q.name, q.required ? "" : " (optional)"),
    h("div", { class: "choices" }, [1, 2, 3, 4, 5].map((n) => h("button", {
      type: "button",
      class: "button small",
      "aria-pressed": pressed(answer.rating === n),
      "aria-label": `Rating ${n}`,
      onclick: () => rate(n),
    }, h("kbd", {}, String(n))))));
}

function labelsControl(q, index) {
  const chosen = answer.labels[q.name] || [];
  return h("fieldset", {
    class: `question labels${focusedLabels === index ? " focused" : ""}`,
    tabindex: "0",
    dataset: { kind: "labels", name: q.name, index: String(index) },
    onfocus: () => { focusedLabels = index; markLabels(); },
  },
  h("legend", {}, q.prompt || q.name, q.multiple ? " (any)" : "", q.required ? "" : " (optional)"),
  h("div", { class: "choices" }, q.options.map((option, i) => h("label", { class: "choice" },
    h("input", {
      type: q.multiple ? "checkbox" : "radio",
      name: `label-${q.name}`,
      value: option,
      checked: chosen.includes(option),
      onchange: () => toggleLabel(q, option),
    }),
    i < 9 ? h("kbd", {}, String(i + 1)) : null, " ", option))));
}

function textControl(q) {
  return h("label", { class: "question", dataset: { kind: "text", name: q.name } },
    `${q.prompt || q.name}${q.required ? "" : " (optional)"}`,
    h("input", {
      type: "text",
      class: "text-answer",
      value: answer.texts[q.name] || "",
      autocomplete: "off",
      dataset: { name: q.name },
      oninput: (e) => { answer.texts[q.name] = e.target.value; },
    }));
}

function renderQuestions() {
  const labels = current.questions.filter((q) => q.kind === "labels");
  const controls = current.questions.map((q) => {
    if (q.kind === "decision") return decisionControl(q);
    if (q.kind === "rating") return ratingControl(q);
    if (q.kind === "labels") return labelsControl(q, labels.indexOf(q));
    return textControl(q);
  });
  fill(byId("questions"), controls);
  byId("editor").hidden = answer.edit === null;
}

function markLabels() {
  for (const node of document.querySelectorAll("fieldset.labels")) {
    node.classList.toggle("focused", Number(node.dataset.index) === focusedLabels);
  }
}

// -- answering --------------------------------------------------------------------------------

function decide(decision) {
  answer.decision = decision;
  if (decision === "approve") {
    submit();
    return;
  }
  renderQuestions();
  byId("reason").focus();
}

function submitReason(reason) {
  answer.reason = reason;
  submit();
}

function rate(n) {
  if (!question("rating")) return;
  answer.rating = answer.rating === n ? null : n;
  renderQuestions();
}

function toggleLabel(q, option) {
  const chosen = answer.labels[q.name] || [];
  if (q.multiple) answer.labels[q.name] = chosen.includes(option) ? chosen.filter((o) => o !== option) : [...chosen, option];
  else answer.labels[q.name] = chosen.includes(option) ? [] : [option];
}

function pickLabel(n) {
  const q = current.questions.filter((x) => x.kind === "labels")[focusedLabels];
  const option = q?.options[n - 1];
  if (!option) return;
  toggleLabel(q, option);
  renderQuestions();
  document.querySelector(`fieldset.labels[data-index="${focusedLabels}"]`)?.focus();
}

function focusLabels() {
  const count = current.questions.filter((q) => q.kind === "labels").length;
  if (!count) return;
  focusedLabels = (focusedLabels + 1) % count;
  document.querySelector(`fieldset.labels[data-index="${focusedLabels}"]`)?.focus();
}

function openEditor() {
  if (!current.editable) {
    showError(new Error("This sample's schema does not allow edits."));
    return;
  }
  answer.edit ??= JSON.stringify(current.sample.content, null, 2);
  byId("edit-json").value = answer.edit;
  byId("editor").hidden = false;
  byId("edit-json").focus();
}

function closeEditor() {
  if (answer.edit === null) byId("editor").hidden = true;
  byId("edit-json").value = answer.edit ?? "";
}

/** The review's body, from what was answered; an Error for content that is not JSON. */
function reviewBody() {
  const answers = {};
  const reasons = {};
  for (const q of current.questions) {
    if (q.kind === "decision") {
      if (answer.decision) answers[q.name] = answer.decision;
      if (answer.decision === "reject" && answer.reason.trim()) reasons.reason = answer.reason.trim();
    } else if (q.kind === "rating") {
      if (answer.rating !== null) answers[q.name] = answer.rating;
    } else if (q.kind === "labels") {
      const chosen = answer.labels[q.name] || [];
      if (chosen.length) answers[q.name] = q.multiple ? chosen : chosen[0];
    } else if ((answer.texts[q.name] || "").trim()) {
      answers[q.name] = answer.texts[q.name].trim();
    }
  }
  const body = { answers, ...reasons };
  if (answer.edit !== null) {
    let content;
    try {
      content = JSON.parse(answer.edit);
    } catch (error) {
      throw new Error(`Invalid JSON: ${error.message}`);
    }
    if (JSON.stringify(content) !== JSON.stringify(current.sample.content)) body.content = content;
  }
  return body;
}

let sending = false;

async function submit() {
  if (!current || sending) return;
  clearError();
  if (!answer.decision) {
    showError(new Error("Choose a decision first: a approves, r rejects."));
    return;
  }
  let body;
  try {
    body = reviewBody();
  } catch (error) {
    showError(error);
    return;
  }
  sending = true;
  byId("submit").disabled = true;
  try {
    await postJSON(`${api}/samples/${encodeURIComponent(current.sample.id)}/reviews`, body);
  } catch (error) {
    // What was typed stays: the form is not drawn anew.
    showError(error);
    return;
  } finally {
    sending = false;
    byId("submit").disabled = false;
  }
  if (body.content) current.sample = { ...current.sample, content: body.content };
  seen.add(current.sample.id);
  last = { item: current, answer: { ...answer, edit: null } };
  done += 1;
  await advance();
  loadProgress();
}

async function skip() {
  if (!current) return;
  const item = current;
  seen.add(item.sample.id);
  try {
    await postJSON(`${api}/review/release`, { sample_ids: [item.sample.id] });
  } catch (error) {
    seen.delete(item.sample.id);
    showError(error);
    return;
  }
  await advance();
  loadProgress();
}

/** The last review again, as it was answered: submitting it replaces the review. */
async function undo() {
  if (!last) return;
  if (current) queue.unshift(current);
  current = last.item;
  answer = last.answer;
  focusedLabels = -1;
  last = null;
  done -= 1;
  await render();
  loadProgress();
}

function toggleKeys(show = byId("keys").hidden) {
  byId("keys").hidden = !show;
  byId("show-keys").setAttribute("aria-expanded", String(show));
  if (show) byId("keys").scrollIntoView({ block: "nearest" });
}

// -- the keyboard ---------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || target.tagName === "TEXTAREA"
    || target.tagName === "SELECT" || (target.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(target.type)));
}

function inLabels(target) {
  return target instanceof Element && target.closest("fieldset.labels") !== null;
}

document.addEventListener("keydown", (event) => {
  if (!current || event.altKey || event.metaKey) return;
  const target = event.target;
  if (event.key === "Escape") {
    if (!byId("keys").hidden) toggleKeys(false);
    else if (target.id === "edit-json") {
      answer.edit = target.value;
      byId("review").focus();
    } else if (target.id === "reason") {
      answer.decision = null;
      renderQuestions();
      byId("review").focus();
    } else if (typing(target) || inLabels(target)) {
      focusedLabels = -1;
      markLabels();
      byId("review").focus();
    } else return;
    event.preventDefault();
    return;
  }
  if (target.id === "edit-json") {
    answer.edit = target.value;
    if (event.key === "Enter" && event.ctrlKey) {
      event.preventDefault();
      answer.decision ??= "approve";
      submit();
    }
    return;
  }
  if (target.id === "reason") {
    // A number on an empty field picks that reason; anything else is the reason typed.
    const n = Number(event.key);
    const reasons = current.questions.find((q) => q.kind === "decision")?.reasons || [];
    if (!target.value && n >= 1 && n <= reasons.length && !event.ctrlKey) {
      event.preventDefault();
      submitReason(reasons[n - 1]);
    } else if (event.key === "Enter") {
      event.preventDefault();
      answer.reason = target.value;
      submit();
    }
    return;
  }
  if (typing(target)) {
    if (event.key === "Enter") {
      event.preventDefault();
      if (answer.decision) submit();
      else byId("review").focus();
    }
    return;
  }
  if (event.ctrlKey) return;
  const n = Number(event.key);
  if (event.key === "a") decide("approve");
  else if (event.key === "r") decide("reject");
  else if (event.key === "e") openEditor();
  else if (event.key === "c") document.querySelector("input.text-answer")?.focus();
  else if (event.key === "l") focusLabels();
  else if (event.key === "s") skip();
  else if (event.key === "u") undo();
  else if (event.key === "?") toggleKeys();
  else if (event.key === "Enter" && !(target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement)) submit();
  else if (n >= 1 && n <= 9 && inLabels(target)) pickLabel(n);
  else if (n >= 1 && n <= 5) rate(n);
  else return;
  event.preventDefault();
});

byId("review").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
byId("skip").addEventListener("click", skip);
byId("undo").addEventListener("click", undo);
byId("show-keys").addEventListener("click", () => toggleKeys());

// The dataset's name, the progress and the first reservation are read at once.
getJSON(api).then((dataset) => {
  fill(byId("dataset-name"), dataset.name);
  fill(byId("crumb"), dataset.name);
  document.title = `Review ${dataset.name} · datamill`;
}, () => {});
loadProgress();
try {
  await reserve();
  await advance();
} catch (error) {
  byId("notice").hidden = false;
  byId("notice").textContent = error instanceof ApiError && error.param ? `${error.message} (${error.param})` : error.message;
  byId("view").hidden = true;
}
