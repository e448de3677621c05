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
  chart.setOption({ ...base(), ...option, xAxis: { ...base().xAxis, ...(option.xAxis || {}) }, yAxis: { ...base().yAxis, ...(option.yAxis || {}) } });
  live.add(chart);
  return chart;
}

export function line(name, data, extra = {}) {
  return { name, type: "line", showSymbol: false, connectNulls: false, data, ...extra };
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
