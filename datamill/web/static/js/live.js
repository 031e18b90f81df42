// Live updates from the server's event stream (GET /api/events, server-sent events).
//
// One stream per page, filtered to the topic it shows (`batch`, `deployment`, `worker`) and,
// on a batch's page, to that batch. EventSource reconnects by itself and resumes with
// Last-Event-ID, so no update is missed across a dropped connection (or, when the server no
// longer has them, a `reset` event says to read the page's state again). It sends this origin's
// cookies, which is how the pages authenticate the stream (the session cookie).
//
// A server without the stream (404) gets a slow refresh of what the page shows instead,
// and the indicator in the top bar says so.

const LABELS = {
  connecting: "Connecting",
  live: "Live",
  reconnecting: "Reconnecting",
  polling: "Refreshing",
  offline: "Offline",
};

function show(state) {
  const indicator = document.getElementById("live");
  if (!indicator) return;
  indicator.hidden = false;
  indicator.dataset.state = state;
  indicator.querySelector(".live-text").textContent = LABELS[state];
}

/** An event's topic and object: events are named by topic (`event: batch`), or unnamed
 *  with ``{"topic", "data"}``. */
function parse(event, topic) {
  const payload = JSON.parse(event.data);
  if (event.type !== "message") return { topic: event.type, data: payload };
  if (payload && typeof payload === "object" && "topic" in payload && "data" in payload) {
    return { topic: payload.topic, data: payload.data };
  }
  return { topic, data: payload };
}

/**
 * Call ``onEvent(data, topic)`` for each event of ``topic`` matching ``filters``.
 * ``fallback = {refresh, every}``: what to call, every ``every`` ms, when the server has no
 * event stream. Returns ``{close()}``.
 */
export function subscribe({ topic, filters = {}, onEvent, fallback = null }) {
  const query = new URLSearchParams({ topic });
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  let source = null;
  let timer = null;
  let opened = false;

  const deliver = (event) => {
    let parsed;
    try {
      parsed = parse(event, topic);
    } catch {
      return; // a comment or keep-alive, not an event
    }
    if (parsed.topic === topic) onEvent(parsed.data, parsed.topic);
  };

  const poll = () => {
    show("polling");
    if (!fallback) return;
    const tick = async () => {
      if (document.visibilityState === "visible") {
        try {
          await fallback.refresh();
          show("polling");
        } catch {
          show("offline");
        }
      }
      timer = setTimeout(tick, fallback.every);
    };
    timer = setTimeout(tick, fallback.every);
  };

  show("connecting");
  source = new EventSource(`/api/events?${query}`, { withCredentials: true });
  source.addEventListener("open", () => {
    // Read the page's state once more now that events flow: the first time, for what
    // changed between the page's own read and the stream's start (under load a batch
    // could finish in that gap, and its page wait for an event already sent); after a
    // reconnection, in case the server no longer had every event since the last one seen.
    fallback?.refresh().catch(() => {});
    opened = true;
    show("live");
  });
  source.addEventListener("message", deliver);
  source.addEventListener(topic, deliver);
  // The events since the last one seen were pruned: what the page shows may be stale.
  source.addEventListener("reset", () => fallback?.refresh().catch(() => {}));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused outright (no such route, or not allowed): EventSource gives up for good.
      source.close();
      if (opened) {
        show("offline");
        // Refused on reconnecting: read the page's state once the usual way, so the page
        // learns why (a 401, the key revoked or expired, sends it to sign in).
        fallback?.refresh().catch(() => {});
      } else poll();
    } else {
      show("reconnecting"); // EventSource retries, resuming from the last event id
    }
  });

  return {
    close() {
      source?.close();
      clearTimeout(timer);
    },
  };
}
