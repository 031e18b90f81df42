// Deployments: each deployment's gate as it is now (circuit breaker, concurrency, admitted
// rate and where it was learned, pauses), its latency percentiles, error rate and cost.
// Read once from GET /api/deployments, then kept current by `deployment` events.
//
// A gate lives in every process that calls the deployment (the server, each worker), and
// each process reports its own state; a card shows them combined.

import { getJSON, isMissingRoute } from "../api.js";
import { byId, fill, h, stat } from "../dom.js";
import { DASH, int, percent, rate, usd } from "../format.js";
import { subscribe } from "../live.js";

const STALE = 120; // seconds: a process silent this long (stopped, or gone) no longer counts
const SEVERITY = { closed: 0, half_open: 1, open: 2 };
const CIRCUIT = {
  closed: ["ok", "circuit closed"],
  half_open: ["warn", "circuit half-open"],
  open: ["bad", "circuit open"],
};
const deployments = new Map(); // name -> {config, processes: Map(process id -> {live, at})}
const container = byId("deployments");

function remember(name, config, processId, live, at = Date.now() / 1000) {
  const entry = deployments.get(name) || { config: { name }, processes: new Map() };
  if (config) entry.config = { ...entry.config, ...config };
  if (live) entry.processes.set(processId, { live, at });
  deployments.set(name, entry);
  return entry;
}

const sum = (lives, key) => lives.reduce((total, live) => total + (live[key] ?? 0), 0);
const most = (lives, pick) => {
  const values = lives.map(pick).filter((v) => v !== null && v !== undefined);
  return values.length ? Math.max(...values) : null;
};

/** The processes' states as one: counts add up, the worst circuit and latency win. */
function combine(entry) {
  const now = Date.now() / 1000;
  const all = [...entry.processes.values()];
  const fresh = all.filter((p) => now - p.at < STALE);
  const lives = (fresh.length ? fresh : all).map((p) => p.live);
  if (!lives.length) return null;
  const calls = sum(lives, "calls_per_minute");
  const errors = sum(lives, "errors_per_minute");
  const hasRecent = lives.some((l) => "calls_per_minute" in l);
  return {
    processes: lives.length,
    circuit: lives.map((l) => l.circuit).sort((a, b) => SEVERITY[b] - SEVERITY[a])[0],
    in_flight: sum(lives, "in_flight"),
    waiting: sum(lives, "waiting"),
    concurrency_limit: sum(lives, "concurrency_limit"),
    concurrency_reason: lives[0].concurrency_reason,
    admitted_rpm: lives.some((l) => l.admitted_rpm == null) ? null : sum(lives, "admitted_rpm"),
    rpm_source: lives[0].rpm_source,
    rpm_ceiling: most(lives, (l) => l.rpm_ceiling),
    paused_for: most(lives, (l) => l.paused_for) ?? 0,
    rate_limited: sum(lives, "rate_limited"),
    breaker_opens: sum(lives, "breaker_opens"),
    calls_per_minute: hasRecent ? calls : null,
    error_rate: hasRecent && calls ? errors / calls : null,
    p50: most(lives, (l) => l.latency_ms?.p50),
    p95: most(lives, (l) => l.latency_ms?.p95),
    p99: most(lives, (l) => l.latency_ms?.p99),
    cost_usd: lives.some((l) => "cost_usd" in l) ? sum(lives, "cost_usd") : entry.config.cost_usd ?? null,
  };
}

function ms(value) {
  if (value === null || value === undefined) return DASH;
  return value < 10 ? `${value.toFixed(1)} ms` : value < 10000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

function rpmNote(live) {
  const source = { configured: "configured", headers: "from headers", "429s": "learned from 429s" }[live.rpm_source];
  return source || "not limited";
}

function card(name, entry) {
  const config = entry.config;
  const live = combine(entry) || { circuit: "unknown" };
  const [tone, label] = CIRCUIT[live.circuit] || ["idle", "no calls yet"];
  const served = config.model || config.alias || (config.passthrough ? "any model" : "");
  return h(
    "article",
    { class: `card deployment circuit-${live.circuit}`, dataset: { name, circuit: live.circuit }, "aria-labelledby": `dep-${name}` },
    h("div", { class: "card-head" },
      h("h2", { id: `dep-${name}` }, name),
      h("span", { class: `badge ${tone} circuit`, role: "status" }, label)),
    h("p", { class: "where" }, [config.provider, served, config.base_url || "in-process"].filter(Boolean).join(" · ")),
    live.paused_for > 0 ? h("p", { class: "notice" }, `Paused ${live.paused_for.toFixed(1)} s: the provider asked to wait (Retry-After).`) : null,
    h("dl", { class: "stats" },
      stat("In flight", int(live.in_flight), `of ${int(live.concurrency_limit)}`),
      stat("Calls/min", rate(live.calls_per_minute), live.waiting ? `${int(live.waiting)} waiting` : "last minute"),
      stat("Error rate", percent(live.error_rate), "last minute"),
      stat("Latency p50", ms(live.p50)),
      stat("p95", ms(live.p95)),
      stat("p99", ms(live.p99)),
      stat("Admitted rpm", live.admitted_rpm == null ? "∞" : rate(live.admitted_rpm), rpmNote(live)),
      stat("Rate ceiling", live.rpm_ceiling == null ? DASH : rate(live.rpm_ceiling), "rpm"),
      stat("Concurrency", int(live.concurrency_limit), live.concurrency_reason || ""),
      stat("429s", int(live.rate_limited), live.processes > 1 ? `${live.processes} processes` : ""),
      stat("Circuit opens", int(live.breaker_opens)),
      stat("Cost", usd(live.cost_usd)),
    ),
  );
}

function render() {
  fill(container, [...deployments].map(([name, entry]) => card(name, entry)));
  const open = [...deployments.values()].filter((e) => combine(e)?.circuit === "open").length;
  const plural = deployments.size === 1 ? "" : "s";
  fill(byId("summary"), `${deployments.size} deployment${plural}${open ? ` · ${open} with an open circuit` : ""}`);
}

/** The server's view: GET /api/deployments, or /api/info on servers without it. */
async function load() {
  try {
    const answer = await getJSON("/api/deployments");
    // Each: the public configuration, this server's `live` state and `process`, and the
    // latest state of each other process calling it (`elsewhere`).
    for (const { live, process, elsewhere, ...config } of answer.data) {
      remember(config.name, config, process.id, live);
      for (const other of elsewhere) remember(config.name, null, other.process.id, other.live, other.at);
    }
    return render();
  } catch (error) {
    if (!isMissingRoute(error)) throw error;
  }
  const info = await getJSON("/api/info");
  for (const { live, ...config } of info.deployments) remember(config.name, config, "server", live);
  render();
}

/** A `deployment` event: one process's view of one deployment. */
function update(event) {
  remember(event.name, event.config, event.process?.id ?? "server", event.live);
  render();
}

await load();
subscribe({ topic: "deployment", onEvent: update, fallback: { refresh: load, every: 1000 } });
