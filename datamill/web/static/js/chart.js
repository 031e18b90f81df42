// The throughput chart (uPlot, vendored): requests completed and failed per second over time,
// in the theme's colours, redrawn when the theme or the width changes.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { rate } from "./format.js";

function colour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Each point is a bucket's rate, held until the next bucket starts.
const STEPS = uPlot.paths.stepped({ align: 1 });
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

function options(width) {
  const muted = colour("--muted");
  const grid = colour("--border");
  const axis = {
    stroke: muted,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: "12px system-ui, sans-serif",
  };
  return {
    width,
    height: width < 500 ? 180 : 240,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
    // Buckets are whole seconds or more: no ticks in between.
    axes: [{ ...axis, space: 60, incrs: TIME_STEPS }, { ...axis, size: 48, values: (_u, values) => values.map(rate) }],
    series: [
      {},
      { label: "completed/s", stroke: colour("--ok"), width: 2, fill: `${colour("--ok")}22`, paths: STEPS, points: { show: false } },
      { label: "failed/s", stroke: colour("--bad"), width: 2, paths: STEPS, points: { show: false } },
    ],
  };
}

export class ThroughputChart {
  constructor(container) {
    this.container = container;
    this.data = [[], [], []];
    this.plot = null;
    new ResizeObserver(() => this.resize()).observe(container);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.redraw());
  }

  /** ``times``: the start of each bucket (Unix seconds), ``completed`` and ``failed``: its
   *  rates per second; ``bucket``: its length, so that the last bucket is drawn whole. */
  set(times, completed, failed, bucket = 1) {
    const end = times.length ? [times[times.length - 1] + bucket] : [];
    const last = (series) => series.slice(-1);
    this.data = [[...times, ...end], [...completed, ...last(completed)], [...failed, ...last(failed)]];
    if (!times.length) return;
    if (this.plot) this.plot.setData(this.data);
    else this.redraw();
  }

  redraw() {
    this.plot?.destroy();
    this.plot = null;
    const width = this.container.clientWidth;
    if (!this.data[0].length || !width) return;
    this.plot = new uPlot(options(width), this.data, this.container);
  }

  resize() {
    const width = this.container.clientWidth;
    if (!this.plot) return this.redraw();
    if (width && width !== this.plot.width) this.plot.setSize({ width, height: options(width).height });
  }
}
