// Validation errors by line, as a table: the same on the upload page and on a failed batch.

import { h } from "./dom.js";
import { DASH } from "./format.js";

/** ``errors``: ``[{line, code, param, message}]``. */
export function lineErrorTable(errors) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "data line-errors" },
      h("thead", {}, h("tr", {}, ["Line", "Code", "Field", "Message"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, errors.map((e) => h("tr", {},
        h("td", { class: "num", "data-label": "Line" }, e.line ?? DASH),
        h("td", { "data-label": "Code" }, h("code", {}, e.code ?? DASH)),
        h("td", { "data-label": "Field" }, e.param ? h("code", {}, e.param) : DASH),
        h("td", { "data-label": "Message" }, e.message ?? ""))))));
}
