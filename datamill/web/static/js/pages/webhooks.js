// Webhooks: the project's endpoints, each with its recent deliveries (status, attempts, the
// receiver's last answer) and a Replay button. Webhook deliveries are not on the event
// stream: the page reads them again every few seconds.

import { getJSON, postJSON } from "../api.js";
import { byId, fill, h } from "../dom.js";
import { DASH, ago, iso } from "../format.js";

const EVERY = 5000;
const RECENT = 10;
const list = byId("webhooks");
const notice = byId("notice");

const BADGES = { delivered: "ok", pending: "warn", failed: "bad" };

function statusBadge(status) {
  return h("span", { class: `badge ${BADGES[status] || ""}` }, status);
}

function when(unix) {
  return unix ? h("time", { datetime: iso(unix), title: iso(unix) }, ago(unix)) : DASH;
}

function replayButton(endpoint, delivery) {
  return h("button", {
    type: "button",
    class: "button small replay",
    "aria-label": `Replay ${delivery.id}`,
    onclick: async (event) => {
      event.currentTarget.disabled = true;
      try {
        await postJSON(`/api/webhooks/${encodeURIComponent(endpoint.id)}/deliveries/${encodeURIComponent(delivery.id)}/replay`);
        await refresh();
      } catch (error) {
        show(`Replay failed: ${error.message}`);
      }
    },
  }, "Replay");
}

function deliveryRow(endpoint, delivery) {
  const answer = delivery.last_status_code ? `HTTP ${delivery.last_status_code}` : DASH;
  return h("tr", { class: "delivery", dataset: { id: delivery.id } },
    h("td", { "data-label": "Message" }, h("div", {}, h("code", {}, delivery.id), h("span", { class: "sub" }, delivery.event_type))),
    h("td", { "data-label": "Status" }, statusBadge(delivery.status)),
    h("td", { class: "num", "data-label": "Attempts" }, String(delivery.attempts)),
    h("td", { "data-label": "Last answer", title: delivery.last_error || "" }, answer),
    h("td", { class: "num", "data-label": "Created" }, when(delivery.created_at)),
    h("td", { "data-label": "" }, replayButton(endpoint, delivery)),
  );
}

function endpointCard(endpoint, deliveries) {
  const state = endpoint.enabled
    ? h("span", { class: "badge ok" }, "enabled")
    : h("span", { class: "badge bad", title: endpoint.disabled_reason || "" }, "disabled");
  const types = endpoint.event_types.length ? endpoint.event_types.join(", ") : "every event type";
  return h("section", { class: "card webhook", dataset: { id: endpoint.id } },
    h("div", { class: "card-head" },
      h("h2", { class: "mono" }, endpoint.url),
      state),
    h("p", { class: "muted summary" },
      h("code", {}, endpoint.id), ` · ${types}`,
      endpoint.description ? ` · ${endpoint.description}` : "",
      endpoint.disabled_reason ? ` · ${endpoint.disabled_reason}` : ""),
    deliveries.length
      ? h("div", { class: "table-wrap" },
        h("table", { class: "data deliveries" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Message"),
            h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col", class: "num" }, "Attempts"),
            h("th", { scope: "col" }, "Last answer"),
            h("th", { scope: "col", class: "num" }, "Created"),
            h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Replay")))),
          h("tbody", {}, deliveries.map((d) => deliveryRow(endpoint, d)))))
      : h("p", { class: "muted" }, "Nothing sent yet."),
  );
}

function show(message) {
  notice.textContent = message;
  notice.hidden = !message;
}

async function refresh() {
  const endpoints = (await getJSON("/api/webhooks")).data;
  const logs = await Promise.all(endpoints.map((endpoint) =>
    getJSON(`/api/webhooks/${encodeURIComponent(endpoint.id)}/deliveries?limit=${RECENT}`)));
  fill(list, endpoints.map((endpoint, i) => endpointCard(endpoint, logs[i].data)));
  byId("empty").hidden = endpoints.length > 0;
  const disabled = endpoints.filter((e) => !e.enabled).length;
  byId("summary").textContent = endpoints.length
    ? `${endpoints.length} endpoint${endpoints.length === 1 ? "" : "s"}${disabled ? `, ${disabled} disabled` : ""}; the last ${RECENT} deliveries of each.`
    : "";
}

await refresh();
setInterval(() => refresh().then(() => show(""), (error) => show(`Could not read the webhooks: ${error.message}`)), EVERY);
