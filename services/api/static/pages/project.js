// One project: KPI tiles against its targets, charts per stream, live alarm feed.
import { api } from "../api.js";
import { RSRP_BANDS, SINR_BANDS, bands, draw, line, timeAxis } from "../charts.js";
import { fmtNum, fmtPct, fmtTime, t } from "../i18n.js";
import { empty, fill, h, panel, severityBadge, statusChip, toast } from "../ui.js";
import { causeChip } from "./availability.js";
import { reportButtons } from "./report.js";

export const NAME = "project";
const STATES = ["moving", "loading", "idle", "charging", "error", "estop"];
const STATE_COLORS = { moving: "#66bb6a", loading: "#4fc3f7", idle: "#90a4ae", charging: "#ffee58", error: "#ef5350", estop: "#d500f9" };

// Targets are named `<kpi>_max` or `<kpi>_min` in the project's `targets`; the last item is
// the KPI's path in the summary, whose `labels` name it as the programme's documents do.
const TILES = [
  ["defect_rate", "defect_rate", (k) => k.inspection.defect_rate, (v) => fmtPct(v, 2), "inspection.defect_rate"],
  ["first_pass_yield", "first_pass_yield", (k) => k.inspection.first_pass_yield, (v) => fmtPct(v, 2), "inspection.first_pass_yield"],
  ["inspections", "inspections", (k) => k.inspection.inspections, (v) => fmtNum(v, 0), "inspection.inspections"],
  ["utilisation", "utilisation", (k) => k.agv.utilisation, (v) => fmtPct(v), "agv.utilisation"],
  ["e_stops", "e_stops", (k) => k.agv.e_stops, (v) => fmtNum(v, 0), "agv.e_stops"],
  ["mean_battery", "mean_battery_pct", (k) => k.agv.mean_battery_pct, (v) => (v == null ? "–" : `${fmtNum(v)} %`), "agv.mean_battery_pct"],
  ["latency_p95", "latency_p95_ms", (k) => k.link.latency_ms.p95, (v) => (v == null ? "–" : `${fmtNum(v)} ms`), "link.latency_ms.p95"],
  ["latency_p99", "latency_p99_ms", (k) => k.link.latency_ms.p99, (v) => (v == null ? "–" : `${fmtNum(v)} ms`), "link.latency_ms.p99"],
  ["mean_rsrp", "mean_rsrp_dbm", (k) => k.link.mean_rsrp_dbm, (v) => (v == null ? "–" : `${fmtNum(v)} dBm`), "link.mean_rsrp_dbm"],
  ["mean_sinr", "mean_sinr_db", (k) => k.link.mean_sinr_db, (v) => (v == null ? "–" : `${fmtNum(v)} dB`), "link.mean_sinr_db"],
];

function tile([label, name, get, fmt, path], kpis, targets) {
  let value = null;
  try {
    value = get(kpis);
  } catch {
    value = null;
  }
  const max = targets[`${name}_max`];
  const min = targets[`${name}_min`];
  let status = "";
  let targetText = null;
  if (max !== undefined) {
    targetText = `${t("target")} ≤ ${fmt(max)}`;
    if (value != null) status = value <= max ? "met" : "missed";
  } else if (min !== undefined) {
    targetText = `${t("target")} ≥ ${fmt(min)}`;
    if (value != null) status = value >= min ? "met" : "missed";
  }
  return h("div", { class: `tile ${status}`, dataset: { kpi: name } },
    h("span", { class: "k" }, kpis?.labels?.[path] ?? t(label)),
    h("b", {}, fmt(value)),
    targetText ? h("span", { class: "target" }, targetText, status ? ` · ${t(status)}` : "") : null);
}

function pts(series, pick) {
  return series.points.map((p) => [p.t, pick(p)]);
}

// A line of one series response; its bucket width tells the chart where data is missing.
function seriesLine(name, series, pick, extra = {}) {
  return line(name, pts(series, pick), { gapMs: series.bucket_s * 1000, ...extra });
}

export async function render(main, ctx) {
  const pid = ctx.project;
  const enc = encodeURIComponent(pid);
  const can = ctx.me.can_operate;
  const head = h("div", { class: "project-head" });
  const tiles = h("div", { class: "holder" });
  const boxes = {};
  for (const n of ["defect_rate", "throughput", "agv_states", "battery", "latency", "rsrp", "sinr"]) boxes[n] = h("div", { class: "chart-box" });
  const feed = h("ul", { class: "feed", id: "alarm-feed" });
  const feedBox = h("div", { class: "holder" }, feed);
  const alarms = new Map();

  main.replaceChildren(h("div", { class: "page project-page" },
    head,
    tiles,
    h("div", { class: "grid" },
      panel("ch_defect_rate", boxes.defect_rate),
      panel("ch_throughput", boxes.throughput),
      panel("ch_agv_states", boxes.agv_states),
      panel("ch_battery", boxes.battery),
      panel("ch_latency", boxes.latency),
      panel("ch_rsrp", boxes.rsrp),
      panel("ch_sinr", boxes.sinr),
      panel("alarm_feed", feedBox, { class: "feed-panel" }),
    )));

  let project;
  try {
    project = await api(`/projects/${enc}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    project = { id: pid, name: pid, targets: {} };
  }
  head.replaceChildren(
    h("h1", { class: "page-title" }, project.name || pid, project.status && project.status !== "active" ? [" ", statusChip(project.status)] : null),
    h("div", { class: "muted" }, [project.enterprise, project.scenario, project.city].filter(Boolean).join(" · ")),
    h("a", { class: "chip", id: "floor-link", href: `#/p/${enc}/floor` }, t("floor_map")),
    h("a", { class: "chip av-link", href: `#/p/${enc}/availability` }, t("av_link")),
    h("a", { class: "chip", id: "oee-link", href: `#/p/${enc}/oee` }, t("oee_link")),
    ...(can ? [] : [h("span", { class: "chip" }, t("read_only"))]),
    reportButtons(pid, ctx.range));

  function alarmRow(a) {
    const actions = h("span", { class: "actions" });
    if (can && (a.state === "open" || a.state === "acknowledged")) {
      if (a.state === "open") actions.append(h("button", { type: "button", class: "ack", onclick: () => act(a.id, "acknowledge") }, t("ack")));
      actions.append(h("button", { type: "button", class: "clear ghost", onclick: () => act(a.id, "clear") }, t("clear")));
    }
    // The device's commands (e.g. an AGV's pause) are on its page, with their confirmation.
    if (can) actions.append(h("a", { class: "button ghost device-commands", href: `#/p/${enc}/d/${encodeURIComponent(a.device_id)}` }, t("commands")));
    return h("li", { class: `alarm state-${a.state} ${a.fresh ? "fresh" : ""}`, dataset: { alarmId: a.id, state: a.state, rule: a.rule } },
      severityBadge(a.severity),
      h("div", { class: "what" },
        h("div", {}, h("a", { href: `#/p/${enc}/d/${encodeURIComponent(a.device_id)}` }, a.device_id), " · ", h("b", { title: a.rule }, a.rule_name || a.rule),
          a.cause ? [" ", causeChip(a.cause)] : null),
        h("div", { class: "muted small" }, a.message || "")),
      h("div", { class: "when small" }, h("span", { class: `st st-${a.state}` }, t(a.state)), h("br"), fmtTime(a.updated_at || a.opened_at)),
      actions);
  }

  function renderFeed() {
    const list = [...alarms.values()].sort((x, y) => Date.parse(y.opened_at) - Date.parse(x.opened_at));
    feed.replaceChildren(...list.slice(0, 100).map(alarmRow));
    if (!list.length) feedBox.replaceChildren(empty("no_alarms"));
    else if (feedBox.firstChild !== feed) feedBox.replaceChildren(feed);
  }

  async function act(id, action) {
    try {
      const a = await api(`/alarms/${id}/${action}`, { method: "POST", body: {} });
      alarms.set(a.id, a);
      renderFeed();
    } catch (e) {
      toast(e.status === 403 ? t("forbidden") : `${t("error")}: ${e.message}`, "bad");
    }
  }

  async function loadAlarms() {
    const page = await api("/alarms", { params: { project: pid, state: "active", limit: 100 } });
    alarms.clear();
    for (const a of page.items) alarms.set(a.id, a);
    renderFeed();
  }

  async function loadTiles(r) {
    const k = await api(`/projects/${enc}/kpis`, { params: { start: r.start, end: r.end } });
    const targets = project.targets || {};
    const shares = k.agv.state_share || {};
    draw(boxes.agv_states, "agv_states", {
      tooltip: { trigger: "item" },
      xAxis: { show: false },
      yAxis: { show: false },
      legend: { top: 0, textStyle: { color: "#cfd8dc" } },
      series: [{
        type: "pie", radius: ["40%", "70%"], center: ["50%", "58%"],
        label: { color: "#cfd8dc", formatter: "{b}: {d}%" },
        data: STATES.filter((s) => shares[s]).map((s) => ({ name: t(s === "error" ? "error_state" : s), value: shares[s], itemStyle: { color: STATE_COLORS[s] } })),
      }],
    }, STATES.filter((s) => shares[s]).length);
    return h("div", { class: "tiles" }, TILES.map((d) => tile(d, k, targets)));
  }

  async function loadStations(r) {
    const s = await api(`/projects/${enc}/dashboard/stations`, { params: { start: r.start, end: r.end, points: 120 } });
    const n = s.stations.reduce((a, st) => a + st.points.length, 0);
    draw(boxes.defect_rate, "defect_rate", {
      xAxis: timeAxis(r),
      yAxis: { axisLabel: { formatter: (v) => `${(v * 100).toFixed(1)}%` } },
      tooltip: { trigger: "axis", valueFormatter: (v) => fmtPct(v, 2) },
      series: s.stations.map((st) => line(st.device_id, st.points.map((p) => [p.t, p.inspections ? p.failed / p.inspections : null]), { gapMs: s.bucket_s * 1000 })),
    }, n);
    draw(boxes.throughput, "throughput", {
      xAxis: timeAxis(r),
      yAxis: { scale: false, minInterval: 1 },
      series: s.stations.map((st) => ({ name: st.device_id, type: "bar", stack: "parts", data: st.points.map((p) => [p.t, p.inspections]) })),
    }, n);
  }

  async function loadSeries(r) {
    const q = (stream, field) => api(`/projects/${enc}/series`, { params: { stream, field, start: r.start, end: r.end, points: 240 } });
    const [battery, latency, rsrp, sinr] = await Promise.all([
      q("agv", "battery"), q("link", "latency_ms"), q("link", "rsrp"), q("link", "sinr")]);
    draw(boxes.battery, "battery", {
      xAxis: timeAxis(r),
      yAxis: { min: 0, max: 100 },
      series: [seriesLine(t("avg"), battery, (p) => p.avg), seriesLine(t("min"), battery, (p) => p.min, { lineStyle: { type: "dashed" } })],
    }, battery.points.length);
    draw(boxes.latency, "latency", {
      xAxis: timeAxis(r),
      series: [seriesLine("p50", latency, (p) => p.p50), seriesLine("p95", latency, (p) => p.p95), seriesLine("p99", latency, (p) => p.p99)],
    }, latency.points.length);
    draw(boxes.rsrp, "rsrp", {
      xAxis: timeAxis(r),
      yAxis: { min: -130, max: -50, scale: false },
      series: [seriesLine(t("avg"), rsrp, (p) => p.avg, { markArea: bands(RSRP_BANDS) }), seriesLine(t("min"), rsrp, (p) => p.min, { lineStyle: { type: "dashed" } })],
    }, rsrp.points.length);
    draw(boxes.sinr, "sinr", {
      xAxis: timeAxis(r),
      yAxis: { min: -10, max: 35, scale: false },
      series: [seriesLine(t("avg"), sinr, (p) => p.avg, { markArea: bands(SINR_BANDS) }), seriesLine(t("min"), sinr, (p) => p.min, { lineStyle: { type: "dashed" } })],
    }, sinr.points.length);
  }

  function chartsInto(load) {
    return async () => {
      try {
        await load(ctx.range());
      } catch (e) {
        for (const b of Object.values(boxes)) if (b instanceof Node && !b.dataset.points) fill(b, () => Promise.reject(e));
      }
    };
  }

  const refreshData = () => Promise.all([
    fill(tiles, () => loadTiles(ctx.range())),
    chartsInto(loadStations)(),
    chartsInto(loadSeries)(),
  ]);
  // Acknowledgements and clears by other operators arrive with the periodic refresh.
  const refreshAll = () => Promise.all([refreshData(), loadAlarms().catch(() => {})]);
  for (const b of Object.values(boxes)) fill(b, () => new Promise(() => {}));
  await Promise.all([refreshData(), fill(feedBox, async () => { await loadAlarms(); return null; })]);

  let last = Date.now();
  return {
    onAlarm(ev) {
      if (ev.project !== pid || ev.alarm_id == null) return;
      const prev = alarms.get(ev.alarm_id) || {};
      alarms.set(ev.alarm_id, {
        ...prev,
        id: ev.alarm_id, project_id: ev.project, device_id: ev.device, rule: ev.rule, rule_name: ev.rule_name, severity: ev.severity,
        state: ev.state, message: ev.message, count: ev.count, opened_at: ev.opened_at || prev.opened_at || ev.at,
        updated_at: ev.at, fresh: ev.transition === "opened",
      });
      renderFeed();
      if (ev.transition === "opened") toast(`${t("new_alarm")}: ${ev.device} · ${ev.rule_name || ev.rule}`, "bad");
    },
    onTick() {
      if (Date.now() - last > 15000) {
        last = Date.now();
        refreshAll();
      }
    },
  };
}
