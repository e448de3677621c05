// ECharts (vendored, Apache-2.0) with one look for every chart; each chart box records how
// many points it drew in data-points, so a page (and its tests) can tell data from none.
import { t, currentLang } from "./i18n.js";
import { empty } from "./ui.js";

const live = new Set();
const PALETTE = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292"];
const BAND_COLORS = { excellent: "rgba(76,175,80,0.16)", good: "rgba(139,195,74,0.12)", fair: "rgba(255,193,7,0.12)", poor: "rgba(244,67,54,0.14)" };

window.addEventListener("resize", () => {
  for (const c of live) c.resize();
});

export function disposeAll() {
  for (const c of live) c.dispose();
  live.clear();
}

function base() {
  return {
    color: PALETTE,
    backgroundColor: "transparent",
    textStyle: { color: "#cfd8dc", fontFamily: "inherit" },
    grid: { left: 56, right: 20, top: 36, bottom: 36, containLabel: false },
    tooltip: { trigger: "axis", confine: true },
    legend: { top: 0, textStyle: { color: "#cfd8dc" }, type: "scroll" },
    xAxis: { type: "time", axisLine: { lineStyle: { color: "#546e7a" } }, axisLabel: { color: "#90a4ae", fontSize: 12 }, splitLine: { show: false } },
    yAxis: { type: "value", axisLine: { lineStyle: { color: "#546e7a" } }, axisLabel: { color: "#90a4ae", fontSize: 12 }, splitLine: { lineStyle: { color: "#263238" } }, scale: true },
    animation: false,
  };
}

// ECharts rounds a time axis out to "nice" bounds, so a 24 h range could show 48 h and the
// newest data sat minutes short of the edge. The axis shows the range asked for instead, or,
// for a chart drawn without one, exactly the data it has.
export function timeAxis(r) {
  return { min: Date.parse(r.start), max: Date.parse(r.end) };
}

function xAxisOf(option) {
  const x = { ...base().xAxis, ...(option.xAxis || {}) };
  if (x.type === "time") {
    x.min ??= (e) => e.min;
    x.max ??= (e) => e.max;
  }
  return x;
}

// Draw `option` into `box` (replacing any earlier chart); nothing to draw shows the empty state.
export function draw(box, name, option, points) {
  box.dataset.chart = name;
  box.dataset.points = String(points);
  const old = echarts.getInstanceByDom(box.querySelector(".chart") || box);
  if (old) {
    live.delete(old);
    old.dispose();
  }
  if (!points) {
    box.replaceChildren(empty("no_data"));
    return null;
  }
  const el = document.createElement("div");
  el.className = "chart";
  box.replaceChildren(el);
  const chart = echarts.init(el, null, { renderer: "canvas", locale: currentLang() === "zh" ? "ZH" : "EN" });
  chart.setOption({ ...base(), ...option, xAxis: xAxisOf(option), yAxis: { ...base().yAxis, ...(option.yAxis || {}) } });
  live.add(chart);
  return chart;
}

// A gap of more than this many buckets without data breaks the line instead of bridging it.
const GAP_BUCKETS = 2.5;

function millis(t) {
  return typeof t === "number" ? t : Date.parse(t);
}

// [t, value] pairs with a null where the data has a gap, and a marker on each point that has
// no neighbour to draw a line to: a series of single readings between gaps (an optional
// field, a device that reports now and then) would otherwise draw nothing at all.
function sparse(data, gapMs) {
  const ts = data.map(([t]) => millis(t));
  let step = gapMs;
  if (!step) {
    for (let i = 1; i < ts.length; i++) {
      const d = ts[i] - ts[i - 1];
      if (d > 0 && !(d >= step)) step = d;
    }
  }
  const out = [];
  for (let i = 0; i < data.length; i++) {
    if (i > 0 && step && ts[i] - ts[i - 1] > GAP_BUCKETS * step) out.push([ts[i - 1] + step, null]);
    out.push([data[i][0], data[i][1] ?? null]);
  }
  return out.map((p, i) => {
    const alone = p[1] !== null && (out[i - 1]?.[1] ?? null) === null && (out[i + 1]?.[1] ?? null) === null;
    return alone ? { value: p, symbol: "circle", symbolSize: 7 } : p;
  });
}

// `extra.gapMs`: the series' bucket width, when known (else the data's smallest step).
export function line(name, data, extra = {}) {
  const { gapMs, ...rest } = extra;
  return { name, type: "line", showSymbol: true, symbol: "none", connectNulls: false, data: sparse(data, gapMs), ...rest };
}

// Horizontal quality bands as shaded areas behind a series: [[name, from, to], ...].
export function bands(list) {
  return {
    silent: true,
    data: list.map(([band, from, to]) => [
      { name: t(band), yAxis: from, itemStyle: { color: BAND_COLORS[band] }, label: { color: "#90a4ae", position: "insideRight" } },
      { yAxis: to },
    ]),
  };
}

export const RSRP_BANDS = [["excellent", -80, -40], ["good", -90, -80], ["fair", -100, -90], ["poor", -140, -100]];
export const SINR_BANDS = [["excellent", 20, 40], ["good", 13, 20], ["fair", 0, 13], ["poor", -20, 0]];
