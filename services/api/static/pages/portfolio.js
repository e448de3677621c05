// Every visible project at a glance: scenario, city, devices, today's KPIs, open alarms.
import { api } from "../api.js";
import { draw } from "../charts.js";
import { fmtNum, fmtPct, t } from "../i18n.js";
import { empty, fill, h, panel, severityBadge } from "../ui.js";

export const NAME = "portfolio";
const SEVERITIES = ["critical", "major", "minor", "warning", "info"];
const SEV_COLORS = { critical: "#d500f9", major: "#ef5350", minor: "#ffb74d", warning: "#fff176", info: "#4fc3f7" };

function todayStart() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

function kpiLine(label, value) {
  return h("div", { class: "kv" }, h("span", { class: "k" }, label), h("span", { class: "v" }, value));
}

function card(p, s, kpis) {
  const alarms = s?.active_alarms_by_severity || {};
  const sevs = SEVERITIES.filter((k) => alarms[k]).concat(Object.keys(alarms).filter((k) => !SEVERITIES.includes(k)));
  const k = kpis || {};
  return h(
    "a",
    { class: "card project-card", href: `#/p/${encodeURIComponent(p.id)}`, dataset: { project: p.id } },
    h("div", { class: "card-head" }, h("h3", {}, p.name || p.id), h("span", { class: "muted" }, p.id)),
    h("div", { class: "meta" },
      kpiLine(t("scenario"), p.scenario || "–"),
      kpiLine(t("city"), p.city || "–"),
      kpiLine(t("devices"), h("span", {},
        h("span", { class: "ok" }, `${s?.devices_online ?? 0} ${t("online")}`), " / ",
        h("span", { class: (s?.devices_offline ?? 0) > 0 ? "bad" : "muted" }, `${s?.devices_offline ?? 0} ${t("offline")}`))),
    ),
    h("div", { class: "headline" },
      h("div", { class: "mini" }, h("span", { class: "k" }, `${t("defect_rate")} · ${t("today")}`), h("b", {}, fmtPct(k.inspection?.defect_rate, 2))),
      h("div", { class: "mini" }, h("span", { class: "k" }, t("utilisation")), h("b", {}, fmtPct(k.agv?.utilisation))),
      h("div", { class: "mini" }, h("span", { class: "k" }, t("latency_p95")), h("b", {}, k.link?.latency_ms?.p95 == null ? "–" : `${fmtNum(k.link.latency_ms.p95)} ms`)),
    ),
    h("div", { class: "alarms-line" },
      sevs.length ? sevs.map((sv) => h("span", { class: "sev-count" }, severityBadge(sv), h("b", {}, alarms[sv])))
        : h("span", { class: "muted" }, t("no_alarms"))),
  );
}

export async function render(main) {
  const grid = h("div", { class: "holder" });
  const chartBox = h("div", { class: "chart-box" });
  const alarmBox = h("div", { class: "chart-box" });
  main.replaceChildren(h("div", { class: "page" },
    h("h1", { class: "page-title" }, t("portfolio")),
    grid,
    h("div", { class: "grid" }, panel("devices", chartBox), panel("open_alarms", alarmBox))));

  async function load() {
    const [projects, summary] = await Promise.all([
      api("/projects", { params: { limit: 500 } }),
      api("/dashboard/portfolio"),
    ]);
    const byId = new Map(summary.items.map((s) => [s.project_id, s]));
    const list = projects.items.slice();
    for (const s of summary.items) if (!list.some((p) => p.id === s.project_id)) list.push({ id: s.project_id, name: s.project_id });
    if (!list.length) {
      chartBox.replaceChildren(empty("no_projects"));
      alarmBox.replaceChildren(empty("no_projects"));
      return empty("no_projects");
    }
    const kpis = await Promise.all(list.map((p) =>
      api(`/projects/${encodeURIComponent(p.id)}/kpis`, { params: { start: todayStart() } }).catch(() => null)));
    draw(chartBox, "devices", {
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: list.map((p) => p.id) },
      yAxis: { type: "value", scale: false, minInterval: 1 },
      series: [
        { name: t("online"), type: "bar", stack: "d", data: list.map((p) => byId.get(p.id)?.devices_online ?? 0), itemStyle: { color: "#66bb6a" } },
        { name: t("offline"), type: "bar", stack: "d", data: list.map((p) => byId.get(p.id)?.devices_offline ?? 0), itemStyle: { color: "#ef5350" } },
      ],
    }, list.length);
    const sevs = SEVERITIES.filter((sv) => summary.items.some((x) => x.active_alarms_by_severity[sv]));
    const total = summary.items.reduce((a, x) => a + Object.values(x.active_alarms_by_severity).reduce((b, n) => b + n, 0), 0);
    draw(alarmBox, "alarms", {
      xAxis: { type: "category", data: list.map((p) => p.id) },
      yAxis: { type: "value", scale: false, minInterval: 1 },
      series: sevs.map((sv) => ({
        name: t(sv), type: "bar", stack: "a", itemStyle: { color: SEV_COLORS[sv] },
        data: list.map((p) => byId.get(p.id)?.active_alarms_by_severity[sv] ?? 0),
      })),
    }, total);
    if (!total) alarmBox.replaceChildren(empty("no_alarms"));
    return h("div", { class: "cards" }, list.map((p, i) => card(p, byId.get(p.id), kpis[i])));
  }

  const refresh = () => fill(grid, load);
  await refresh();
  let last = Date.now();
  let pending = null;
  return {
    // An alarm storm refreshes the cards at most every two seconds.
    onAlarm() {
      pending ??= setTimeout(() => {
        pending = null;
        refresh();
      }, 2000);
    },
    dispose: () => clearTimeout(pending),
    onTick: () => {
      if (Date.now() - last > 30000) {
        last = Date.now();
        refresh();
      }
    },
  };
}
