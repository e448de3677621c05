// Every visible project at a glance: scenario, city, devices, today's KPIs, open alarms;
// searchable, and filtered by project status (active by default: archived ones stay out).
import { api } from "../api.js";
import { draw } from "../charts.js";
import { fmtNum, fmtPct, t } from "../i18n.js";
import { empty, fill, h, panel, severityBadge, statusChip } from "../ui.js";

export const NAME = "portfolio";
const SEVERITIES = ["critical", "major", "minor", "warning", "info"];
const SEV_COLORS = { critical: "#d500f9", major: "#ef5350", minor: "#ffb74d", warning: "#fff176", info: "#4fc3f7" };
const STATUSES = ["active", "planned", "paused", "completed", "archived"];
const STATUS_KEY = "f5g.portfolio.status";
// Projects the summary knows from their devices but that have no project record yet are
// shown as the database's default status.
const DEFAULT_STATUS = "active";

function savedStatus() {
  const s = localStorage.getItem(STATUS_KEY);
  return s === "all" || STATUSES.includes(s) ? s : DEFAULT_STATUS;
}

// The same fields and the same case-insensitive substring match as GET /projects?q=.
function matches(p, status, text) {
  if (status !== "all" && (p.status || DEFAULT_STATUS) !== status) return false;
  if (!text) return true;
  const needle = text.toLowerCase();
  return [p.id, p.name, p.enterprise, p.city, p.scenario].some((v) => v != null && String(v).toLowerCase().includes(needle));
}

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
    { class: "card project-card", href: `#/p/${encodeURIComponent(p.id)}`, dataset: { project: p.id, status: p.status || DEFAULT_STATUS } },
    h("div", { class: "card-head" }, h("h3", {}, p.name || p.id),
      h("span", { class: "card-tags" }, h("span", { class: "muted" }, p.id), statusChip(p.status || DEFAULT_STATUS))),
    h("div", { class: "meta" },
      kpiLine(t("scenario"), p.scenario || "–"),
      kpiLine(t("city"), p.city || "–"),
      kpiLine(t("devices"), h("span", {},
        h("span", { class: "ok" }, `${s?.devices_online ?? 0} ${t("online")}`), " / ",
        h("span", { class: (s?.devices_offline ?? 0) > 0 ? "bad" : "muted" }, `${s?.devices_offline ?? 0} ${t("offline")}`))),
    ),
    h("div", { class: "headline" },
      h("div", { class: "mini" }, h("span", { class: "k" }, `${k.labels?.["inspection.defect_rate"] ?? t("defect_rate")} · ${t("today")}`), h("b", {}, fmtPct(k.inspection?.defect_rate, 2))),
      h("div", { class: "mini" }, h("span", { class: "k" }, k.labels?.["agv.utilisation"] ?? t("utilisation")), h("b", {}, fmtPct(k.agv?.utilisation))),
      h("div", { class: "mini" }, h("span", { class: "k" }, k.labels?.["link.latency_ms.p95"] ?? t("latency_p95")), h("b", {}, k.link?.latency_ms?.p95 == null ? "–" : `${fmtNum(k.link.latency_ms.p95)} ms`)),
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
  const search = h("input", { type: "search", id: "project-search", placeholder: t("search_projects"), "aria-label": t("search_projects"), autocomplete: "off" });
  const statusSel = h("select", { id: "project-status", "aria-label": t("status") },
    [...STATUSES, "all"].map((s) => h("option", { value: s, selected: s === savedStatus() }, t(`status_${s}`))));
  const count = h("span", { class: "muted small", id: "project-count" });
  main.replaceChildren(h("div", { class: "page" },
    h("h1", { class: "page-title" }, t("portfolio")),
    h("div", { class: "filters" }, search, h("label", { class: "range" }, h("span", {}, t("status")), statusSel), count),
    grid,
    h("div", { class: "grid" }, panel("devices", chartBox), panel("open_alarms", alarmBox))));

  let data = null;
  let seq = 0;

  async function load() {
    const [projects, summary] = await Promise.all([
      api("/projects", { params: { limit: 500 } }),
      api("/dashboard/portfolio"),
    ]);
    const byId = new Map(summary.items.map((s) => [s.project_id, s]));
    const list = projects.items.slice();
    for (const s of summary.items) if (!list.some((p) => p.id === s.project_id)) list.push({ id: s.project_id, name: s.project_id });
    data = { list, byId, kpis: new Map() };
    return view();
  }

  // The loaded projects through the search box and the status filter; typing re-filters
  // without reloading (today's KPIs are fetched once per project shown).
  async function view() {
    const n = ++seq;
    const { list, byId } = data;
    const shown = list.filter((p) => matches(p, statusSel.value, search.value.trim()));
    const missing = shown.filter((p) => !data.kpis.has(p.id));
    const got = await Promise.all(missing.map((p) =>
      api(`/projects/${encodeURIComponent(p.id)}/kpis`, { params: { start: todayStart() } }).catch(() => null)));
    if (n !== seq) return null; // a newer filter is being drawn
    missing.forEach((p, i) => data.kpis.set(p.id, got[i]));
    count.textContent = `${shown.length} / ${list.length}`;
    grid.dataset.shown = String(shown.length);
    if (!shown.length) {
      const why = list.length ? "no_matching_projects" : "no_projects";
      chartBox.replaceChildren(empty(why));
      alarmBox.replaceChildren(empty(why));
      return empty(why);
    }
    draw(chartBox, "devices", {
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: shown.map((p) => p.id) },
      yAxis: { type: "value", scale: false, minInterval: 1 },
      series: [
        { name: t("online"), type: "bar", stack: "d", data: shown.map((p) => byId.get(p.id)?.devices_online ?? 0), itemStyle: { color: "#66bb6a" } },
        { name: t("offline"), type: "bar", stack: "d", data: shown.map((p) => byId.get(p.id)?.devices_offline ?? 0), itemStyle: { color: "#ef5350" } },
      ],
    }, shown.length);
    const alarmsOf = (p) => byId.get(p.id)?.active_alarms_by_severity || {};
    const sevs = SEVERITIES.filter((sv) => shown.some((p) => alarmsOf(p)[sv]));
    const total = shown.reduce((a, p) => a + Object.values(alarmsOf(p)).reduce((b, x) => b + x, 0), 0);
    draw(alarmBox, "alarms", {
      xAxis: { type: "category", data: shown.map((p) => p.id) },
      yAxis: { type: "value", scale: false, minInterval: 1 },
      series: sevs.map((sv) => ({
        name: t(sv), type: "bar", stack: "a", itemStyle: { color: SEV_COLORS[sv] },
        data: shown.map((p) => alarmsOf(p)[sv] ?? 0),
      })),
    }, total);
    if (!total) alarmBox.replaceChildren(empty("no_alarms"));
    return h("div", { class: "cards" }, shown.map((p) => card(p, byId.get(p.id), data.kpis.get(p.id))));
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => data && fill(grid, view), 150);
  });
  statusSel.addEventListener("change", () => {
    localStorage.setItem(STATUS_KEY, statusSel.value);
    if (data) fill(grid, view);
  });

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
    dispose: () => {
      clearTimeout(pending);
      clearTimeout(typing);
    },
    onTick: () => {
      if (Date.now() - last > 30000) {
        last = Date.now();
        refresh();
      }
    },
  };
}
