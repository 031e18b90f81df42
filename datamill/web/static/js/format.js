// Numbers, money, durations and times, the same way on every page.

const integer = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export const DASH = "—";

export function int(value) {
  return value === null || value === undefined ? DASH : integer.format(Math.round(value));
}

/** 1234567 -> "1.2M"; small numbers stay exact. */
export function count(value) {
  if (value === null || value === undefined) return DASH;
  return Math.abs(value) < 10000 ? integer.format(Math.round(value)) : compact.format(value);
}

export function usd(value) {
  if (value === null || value === undefined) return DASH;
  if (value === 0) return "$0";
  if (Math.abs(value) < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toFixed(2)}`;
}

export function percent(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return DASH;
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return DASH;
  if (perSecond === 0) return "0";
  return perSecond < 10 ? perSecond.toFixed(1) : integer.format(Math.round(perSecond));
}

/** Seconds -> "45 s", "12 min", "3 h 5 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  const m = Math.round(s / 60);
  if (m < 48 * 60) return `${Math.floor(m / 60)} h ${m % 60 ? `${m % 60} min` : ""}`.trim();
  return `${Math.round(m / 1440)} d`;
}

/** Milliseconds from seconds, for latencies: 0.0123 -> "12 ms". */
export function latency(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  const ms = seconds * 1000;
  return ms < 10 ? `${ms.toFixed(1)} ms` : ms < 10000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A Unix time -> "14:03:22" today, "Nov 30 14:03" otherwise. */
export function time(unix) {
  if (!unix) return DASH;
  const date = new Date(unix * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString("en-US", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

export function iso(unix) {
  return unix ? new Date(unix * 1000).toISOString() : "";
}

/** A Unix time -> "5 s ago". */
export function ago(unix, now = Date.now() / 1000) {
  if (!unix) return DASH;
  return `${duration(now - unix)} ago`;
}
