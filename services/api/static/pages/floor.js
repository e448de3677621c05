// The AGV floor map: the floor plan, zones, AGVs by state with their trails, moving with the
// live stream's ticks, and a 5G coverage heatmap (mean RSRP or SINR of the AGV-mounted
// modules per cell) as a layer. Drawn as SVG in map metres, y pointing up.
import { api, getKey } from "../api.js";
import { fmtNum, fmtTime, t } from "../i18n.js";
import { empty, fill, h, panel } from "../ui.js";

export const NAME = "floor";
const SVG = "http://www.w3.org/2000/svg";
const STATE_COLORS = { moving: "#66bb6a", loading: "#4fc3f7", idle: "#90a4ae", charging: "#ffee58", error: "#ef5350", estop: "#d500f9" };
// Colour scale ends per metric: at `bad` and below red, at `good` and above green.
const SCALES = { rsrp: { bad: -120, good: -80 }, sinr: { bad: -5, good: 20 } };
const HEAT_EVERY_TICKS = 6;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function heatColour(value, metric) {
  const { bad, good } = SCALES[metric];
  const f = Math.max(0, Math.min(1, (value - bad) / (good - bad)));
  return `hsl(${Math.round(f * 120)}, 75%, 45%)`;
}

// The rectangle to show: the plan's extent, else what there is to draw, with a margin.
function bounds(floor, heat) {
  if (floor.extent) return floor.extent;
  const xs = [];
  const ys = [];
  for (const a of floor.agvs) for (const p of [a, ...a.trail]) { xs.push(p.x); ys.push(p.y); }
  for (const z of floor.zones) for (const [x, y] of z.polygon) { xs.push(x); ys.push(y); }
  for (const c of heat?.cells || []) { xs.push(c.x0, c.x0 + heat.cell); ys.push(c.y0, c.y0 + heat.cell); }
  if (!xs.length) return { x0: 0, y0: 0, x1: 10, y1: 10 };
  const pad = Math.max(2, (Math.max(...xs) - Math.min(...xs)) * 0.05);
  return { x0: Math.min(...xs) - pad, y0: Math.min(...ys) - pad, x1: Math.max(...xs) + pad, y1: Math.max(...ys) + pad };
}

// The plan image as a data: URL (the page's policy allows data: images, the key goes in a header).
async function planUrl(project, map) {
  const res = await fetch(`/api/v1/projects/${encodeURIComponent(project)}/floor/maps/${encodeURIComponent(map)}/image`,
    { headers: { Authorization: `Bearer ${getKey()}` } });
  if (!res.ok) return null;
  const blob = await res.blob();
  return new Promise((resolve) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => resolve(null);
    r.readAsDataURL(blob);
  });
}

export async function render(main, ctx) {
  const pid = ctx.project;
  const enc = encodeURIComponent(pid);
  const state = { map: null, heatOn: false, metric: "rsrp", floor: null, heat: null, plan: null, planFor: null, ticks: 0 };
  const mapSel = h("select", { id: "floor-map", onchange: () => { state.map = mapSel.value || null; state.heat = null; reload(true); } });
  const heatBox = h("input", { type: "checkbox", id: "floor-heat", onchange: () => { state.heatOn = heatBox.checked; reload(true); } });
  const metricSel = h("select", { id: "floor-metric", onchange: () => { state.metric = metricSel.value; state.heat = null; reload(true); } },
    h("option", { value: "rsrp" }, "RSRP"), h("option", { value: "sinr" }, "SINR"));
  const legend = h("div", { class: "floor-legend small", id: "floor-legend" });
  const stage = h("div", { class: "floor-stage", id: "floor-stage" });
  const table = h("div", { class: "holder", id: "floor-agvs" });
  main.replaceChildren(h("div", { class: "page floor-page" },
    h("div", { class: "project-head" },
      h("h1", { class: "page-title" }, t("floor_map"), " · ", h("a", { href: `#/p/${enc}` }, pid)),
      h("div", { class: "floor-controls" },
        h("label", {}, t("floor_map_id"), " ", mapSel),
        h("label", {}, heatBox, " ", t("floor_heatmap")),
        h("label", {}, t("floor_metric"), " ", metricSel))),
    panel("floor_map", h("div", {}, stage, legend), { class: "wide" }),
    panel("floor_agvs", table, { class: "wide" })));

  async function loadHeat() {
    const r = ctx.range();
    state.heat = await api(`/projects/${enc}/floor/heatmap`, {
      params: { map: state.map, metric: state.metric, cell: 2, start: r.start, end: r.end },
    });
  }

  function draw() {
    const floor = state.floor;
    const heat = state.heatOn ? state.heat : null;
    const b = bounds(floor, heat);
    const w = b.x1 - b.x0;
    const hgt = b.y1 - b.y0;
    const X = (x) => x - b.x0;
    const Y = (y) => b.y1 - y;
    const unit = Math.max(w, hgt) / 100; // one hundredth of the floor: marker and line sizes
    const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, class: "floor-svg", id: "floor-svg", preserveAspectRatio: "xMidYMid meet",
      "data-map": floor.map_id || "" });
    svg.append(s("rect", { x: 0, y: 0, width: w, height: hgt, class: "floor-ground" }));
    if (state.plan && floor.extent) svg.append(s("image", { href: state.plan, x: 0, y: 0, width: w, height: hgt, preserveAspectRatio: "none", class: "floor-plan" }));
    if (heat) {
      const g = s("g", { class: "heat", id: "floor-heatmap", "data-cells": heat.cells.length });
      for (const c of heat.cells) {
        g.append(s("rect", { class: "heat-cell", x: X(c.x0), y: Y(c.y0 + heat.cell), width: heat.cell, height: heat.cell,
          fill: heatColour(c.mean, heat.metric), "fill-opacity": 0.55, "data-mean": c.mean.toFixed(1) },
        s("title", {}, `${fmtNum(c.mean)} ${heat.unit} · ${c.samples}`)));
      }
      svg.append(g);
    }
    for (const z of floor.zones) {
      const pts = z.polygon.map(([x, y]) => `${X(x)},${Y(y)}`).join(" ");
      const colour = z.colour || "#4fc3f7";
      const cx = z.polygon.reduce((a, p) => a + p[0], 0) / z.polygon.length;
      const cy = z.polygon.reduce((a, p) => a + p[1], 0) / z.polygon.length;
      svg.append(s("g", { class: "zone", "data-zone": z.name },
        s("polygon", { points: pts, fill: colour, "fill-opacity": 0.12, stroke: colour, "stroke-width": unit * 0.3 }),
        s("text", { x: X(cx), y: Y(cy), "font-size": unit * 2.2, "text-anchor": "middle", class: "zone-label" }, z.name)));
    }
    for (const a of floor.agvs) {
      if (a.trail.length > 1) {
        svg.append(s("polyline", { class: "trail", "data-device": a.device_id, fill: "none", stroke: STATE_COLORS[a.state] || "#fff",
          "stroke-opacity": 0.45, "stroke-width": unit * 0.4, points: a.trail.map((p) => `${X(p.x)},${Y(p.y)}`).join(" ") }));
      }
    }
    for (const a of floor.agvs) {
      const colour = STATE_COLORS[a.state] || "#fff";
      const rad = ((a.heading ?? 0) * Math.PI) / 180;
      const g = s("g", { class: "agv", "data-device": a.device_id, "data-state": a.state, "data-x": a.x, "data-y": a.y },
        s("title", {}, `${a.device_id} · ${t(a.state === "error" ? "error_state" : a.state)} · ${fmtNum(a.battery, 0)} %`),
        s("circle", { cx: X(a.x), cy: Y(a.y), r: unit * 1.2, fill: colour, stroke: "#0e1418", "stroke-width": unit * 0.2 }),
        s("line", { x1: X(a.x), y1: Y(a.y), x2: X(a.x + Math.cos(rad) * unit * 2.4), y2: Y(a.y + Math.sin(rad) * unit * 2.4),
          stroke: colour, "stroke-width": unit * 0.4 }),
        s("text", { x: X(a.x) + unit * 1.6, y: Y(a.y) - unit * 1.2, "font-size": unit * 2, class: "agv-label" }, a.device_id));
      svg.append(g);
    }
    stage.replaceChildren(svg);
    legend.replaceChildren(
      ...Object.entries(STATE_COLORS).map(([st, c]) => h("span", { class: "legend-item" },
        h("span", { class: "dot", dataset: { colour: c } }, "●"), " ", t(st === "error" ? "error_state" : st))),
      heat ? h("span", { class: "legend-item" }, `${t("floor_heatmap")}: ${heat.metric.toUpperCase()} ${SCALES[heat.metric].bad} … ${SCALES[heat.metric].good} ${heat.unit}`) : null,
      floor.extent ? null : h("span", { class: "muted" }, t("floor_no_plan")));
    for (const dot of legend.querySelectorAll(".dot")) dot.style.color = dot.dataset.colour;
    table.replaceChildren(floor.agvs.length ? h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ...["device", "state", "floor_position", "floor_battery", "last_seen"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, floor.agvs.map((a) => h("tr", { dataset: { device: a.device_id } },
        h("td", {}, h("a", { href: `#/p/${enc}/d/${encodeURIComponent(a.device_id)}` }, a.device_id)),
        h("td", {}, t(a.state === "error" ? "error_state" : a.state)),
        h("td", {}, `${fmtNum(a.x)}, ${fmtNum(a.y)} m`),
        h("td", {}, `${fmtNum(a.battery, 0)} %`),
        h("td", {}, fmtTime(a.ts)))))) : empty("floor_no_agvs"));
  }

  async function reload(withHeat) {
    await fill(stage, async () => {
      state.floor = await api(`/projects/${enc}/floor`, { params: { map: state.map, trail_minutes: 10 } });
      if (!state.map && state.floor.maps.length) {
        state.map = state.floor.maps[0];
        state.floor = await api(`/projects/${enc}/floor`, { params: { map: state.map, trail_minutes: 10 } });
      }
      const maps = state.floor.maps;
      mapSel.replaceChildren(h("option", { value: "" }, t("all")), ...maps.map((m) => h("option", { value: m, selected: m === state.map }, m)));
      if (state.floor.image && state.planFor !== state.map) {
        state.plan = await planUrl(pid, state.map);
        state.planFor = state.map;
      } else if (!state.floor.image) {
        state.plan = null;
      }
      if (state.heatOn && (withHeat || !state.heat)) await loadHeat();
      draw();
      return null;
    });
  }

  await reload(false);
  return {
    onTick() {
      state.ticks += 1;
      stage.dataset.ticks = state.ticks;
      reload(state.heatOn && state.ticks % HEAT_EVERY_TICKS === 0);
    },
  };
}
