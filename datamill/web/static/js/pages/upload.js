// Upload: drop a JSONL file, pick the endpoint, see its errors by line before anything is
// stored (POST /api/files/validate), then create the batch (POST /v1/files, /v1/batches).

import { ApiError, isMissingRoute, postForm, postJSON } from "../api.js";
import { byId, fill, h } from "../dom.js";
import { int } from "../format.js";
import { lineErrorTable } from "../line-errors.js";

const SHOWN = 500; // errors listed; the count says how many there are in all
const input = byId("file");
const zone = byId("dropzone");
const endpoint = byId("endpoint");
const create = byId("create");
const result = byId("validation");
let file = null;
let checked = 0; // bumped per check, so a slow answer for an older choice is ignored

function say(...children) {
  fill(result, ...children);
}

/** The endpoint the file's first line asks for, if it names one we offer. */
async function endpointOf(chosen) {
  const head = await chosen.slice(0, 64 * 1024).text();
  try {
    const url = JSON.parse(head.split("\n", 1)[0]).url;
    return [...endpoint.options].some((o) => o.value === url) ? url : null;
  } catch {
    return null;
  }
}

async function validate() {
  if (!file) return;
  const ticket = ++checked;
  create.disabled = true;
  say(h("p", { class: "muted" }, `Checking ${file.name}…`));
  const form = new FormData();
  form.append("file", file);
  form.append("endpoint", endpoint.value);
  let answer;
  try {
    answer = await postForm("/api/files/validate", form);
  } catch (error) {
    if (ticket !== checked) return;
    if (isMissingRoute(error)) {
      create.disabled = false;
      return say(h("p", { class: "muted" }, "This server checks the file once the batch is created."));
    }
    return say(h("p", { class: "notice bad", role: "alert" }, error.message));
  }
  if (ticket !== checked) return;
  showCheck(answer);
}

/** POST /api/files/validate: ``{total, valid, error_lines, errors: [{line, code, message,
 *  param}], models: [{model, requests, deployments}]}``. */
function showCheck(answer) {
  const plural = (n, word) => `${int(n)} ${word}${n === 1 ? "" : "s"}`;
  const models = answer.models.map((m) => `${m.model} (${int(m.requests)})`).join(", ");
  const served = models ? h("p", { class: "muted" }, `Models: ${models}`) : null;
  if (!answer.error_lines) {
    create.disabled = false;
    return say(h("p", { class: "validation-summary" },
      h("span", { class: "badge ok" }, "valid"), " ", `${plural(answer.total, "request")}, no errors.`), served);
  }
  say(
    h("p", { class: "validation-summary", role: "alert" },
      h("span", { class: "badge bad" }, plural(answer.error_lines, "error")),
      " ",
      `in ${plural(answer.total, "line")}. Fix them, then choose the file again.`),
    lineErrorTable(answer.errors.slice(0, SHOWN)),
    answer.error_lines > Math.min(SHOWN, answer.errors.length)
      ? h("p", { class: "muted" }, `The first ${int(Math.min(SHOWN, answer.errors.length))} are listed.`)
      : null,
    served,
  );
}

async function choose(chosen) {
  if (!chosen) return;
  file = chosen;
  fill(byId("file-name"), chosen.name);
  const url = await endpointOf(chosen);
  if (url) endpoint.value = url;
  await validate();
}

async function submit(event) {
  event.preventDefault();
  if (!file || create.disabled) return;
  create.disabled = true;
  say(h("p", { class: "muted" }, "Uploading…"));
  try {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", file);
    const uploaded = await postForm("/v1/files", form);
    const batch = await postJSON("/v1/batches", {
      input_file_id: uploaded.id,
      endpoint: endpoint.value,
      completion_window: byId("window").value,
    });
    location.assign(`/batches/${encodeURIComponent(batch.id)}`);
  } catch (error) {
    create.disabled = false;
    const field = error instanceof ApiError && error.param ? ` (${error.param})` : "";
    say(h("p", { class: "notice bad", role: "alert" }, `${error.message}${field}`));
  }
}

input.addEventListener("change", () => choose(input.files[0]));
endpoint.addEventListener("change", validate);
byId("upload").addEventListener("submit", submit);
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
}
for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files[0]);
});
