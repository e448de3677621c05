// OEE of one project (ISO 22400-2): availability, effectiveness, quality and OEE per machine
// and line, the downtime Pareto, the per-shift trend, and the shift plan (admins edit it).
import { api } from "../api.js";
import { draw, line, timeAxis } from "../charts.js";
import { fmtNum, fmtPct, fmtTime, t } from "../i18n.js";
import { empty, fill, h, panel, toast } from "../ui.js";

export const NAME = "oee";
const RATIOS = ["availability", "effectiveness", "quality", "oee"];

function hours(s) {
  return s == null ? "–" : `${fmtNum(s / 3600, 1)} h`;
}

function tiles(row, planned) {
  return h("div", { class: "tiles" },
    RATIOS.map((k) => h("div", { class: "tile", dataset: { kpi: `oee_${k}` } },
      h("span", { class: "k" }, t(`oee_${k}`)),
      h("b", {}, fmtPct(row?.[k]))),
    ),
    h("div", { class: "tile", dataset: { kpi: "oee_run" } }, h("span", { class: "k" }, t("oee_run")), h("b", {}, hours(row?.run_s))),
    h("div", { class: "tile", dataset: { kpi: "oee_produced" } }, h("span", { class: "k" }, t("oee_produced")),
      h("b", {}, `${fmtNum(row?.good, 0)} / ${fmtNum(row?.produced, 0)}`)),
    planned ? null : h("p", { class: "muted", id: "oee-no-plan" }, t("oee_no_plan")));
}

function table(rows, keyLabel) {
  if (!rows.length) return empty("no_data");
  return h("table", { class: "table oee-table" },
    h("thead", {}, h("tr", {}, [keyLabel, ...RATIOS.map((k) => `oee_${k}`), "oee_run", "oee_down", "oee_planned_busy", "oee_produced", "oee_good"]
      .map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { key: r.key ?? "" } },
      h("td", {}, r.key ?? t("oee_no_line")),
      ...RATIOS.map((k) => h("td", {}, fmtPct(r[k]))),
      h("td", {}, hours(r.run_s)), h("td", {}, hours(r.down_s)), h("td", {}, hours(r.planned_busy_s)),
      h("td", {}, fmtNum(r.produced, 0)), h("td", {}, fmtNum(r.good, 0))))));
}

export async function render(main, ctx) {
  const pid = ctx.project;
  const enc = encodeURIComponent(pid);
  const head = h("div", { class: "project-head" },
    h("h1", { class: "page-title" }, `${t("oee_title")} · ${pid}`),
    h("a", { href: `#/p/${enc}` }, t("oee_back")));
  const summary = h("div", { class: "holder", id: "oee-summary" });
  const machines = h("div", { class: "holder", id: "oee-machines" });
  const lines = h("div", { class: "holder", id: "oee-lines" });
  const pareto = h("div", { class: "chart-box", id: "oee-pareto" });
  const trend = h("div", { class: "chart-box", id: "oee-trend" });
  const plan = h("div", { class: "holder", id: "oee-settings" });
  main.replaceChildren(h("div", { class: "page oee-page" },
    head, summary,
    h("div", { class: "grid" },
      panel("oee_by_machine", machines),
      panel("oee_by_line", lines),
      panel("oee_pareto", pareto),
      panel("oee_trend", trend),
      panel("oee_settings", plan))));

  const base = `/projects/${enc}/oee`;
  const params = () => {
    const r = ctx.range();
    return { start: r.start, end: r.end };
  };

  async function loadPareto() {
    const p = await api(`${base}/pareto`, { params: params() });
    const names = p.items.map((i) => i.name || `${t("reason")} ${i.reason}`);
    draw(pareto, "oee_pareto", {
      tooltip: {
        trigger: "item",
        formatter: (x) => `${x.name}: ${x.value} min · ${x.data.stops} ${t("oee_stops")} · ${x.data.cum} %`,
      },
      legend: { show: false },
      xAxis: { type: "category", data: names, axisLabel: { color: "#90a4ae", interval: 0, rotate: names.length > 5 ? 30 : 0 } },
      yAxis: { min: 0, name: t("oee_minutes") },
      series: [{
        name: t("oee_downtime"),
        type: "bar",
        data: p.items.map((i) => ({ value: Math.round(i.seconds / 6) / 10, stops: i.count, cum: Math.round(i.cumulative_share * 1000) / 10 })),
      }],
    }, p.items.length);
    return null;
  }

  async function loadTrend() {
    const tr = await api(`${base}/trend`, { params: params() });
    const pts = (k) => tr.items.map((i) => [i.shift_start, i[k] == null ? null : Math.round(i[k] * 1000) / 10]);
    draw(trend, "oee_trend", {
      xAxis: timeAxis(ctx.range()),
      yAxis: { min: 0, name: "%" },
      tooltip: { trigger: "axis", valueFormatter: (v) => (v == null ? "–" : `${v} %`) },
      series: RATIOS.map((k) => line(t(`oee_${k}`), pts(k))),
    }, tr.items.length);
    return null;
  }

  async function loadSettings() {
    const s = await api(`${base}/settings`);
    const shifts = s.shifts.length
      ? h("ul", {}, s.shifts.map((x) => h("li", {}, `${x.name}: ${x.start}–${x.end} · ${x.days.join(",")}`)))
      : h("p", { class: "muted" }, t("oee_no_plan"));
    const out = h("div", {},
      h("p", {}, `${t("oee_timezone")}: ${s.timezone}`), shifts,
      h("p", {}, `${t("oee_ideal_cycle")}: ${s.ideal_cycle_s.default == null ? "–" : `${fmtNum(s.ideal_cycle_s.default, 2)} s`}`),
      s.updated_at ? h("p", { class: "muted small" }, `${s.updated_by} · ${fmtTime(s.updated_at)}`) : null);
    if (ctx.me.scope === "admin") {
      const { project_id: _p, updated_at: _u, updated_by: _b, ...editable } = s;
      const text = h("textarea", { name: "oee_settings", rows: 12, spellcheck: "false", "aria-label": t("oee_settings") },
        JSON.stringify(editable, null, 2));
      const msg = h("p", { class: "bad small", role: "alert" });
      out.append(text, msg, h("button", { type: "button", id: "oee-save", onclick: async () => {
        msg.textContent = "";
        let body;
        try {
          body = JSON.parse(text.value);
        } catch (e) {
          msg.textContent = `${t("oee_bad_json")}: ${e.message}`;
          return;
        }
        try {
          await api(`${base}/settings`, { method: "PUT", body });
          toast(t("oee_saved"));
          await Promise.all([refresh(), fill(plan, loadSettings), fill(trend, loadTrend), fill(pareto, loadPareto)]);
        } catch (e) {
          msg.textContent = e.message;
        }
      } }, t("save")));
    }
    return out;
  }

  async function refresh() {
    const [project, byMachine, byLine] = await Promise.all(["project", "machine", "line"].map((by) =>
      api(base, { params: { ...params(), by } })));
    summary.replaceChildren(tiles(project.items[0], project.planned));
    machines.replaceChildren(table(byMachine.items, "oee_machine"));
    lines.replaceChildren(table(byLine.items, "oee_line"));
  }

  await Promise.all([
    fill(summary, async () => { await refresh(); return null; }),
    fill(pareto, loadPareto),
    fill(trend, loadTrend),
    fill(plan, loadSettings),
  ]);
  return {};
}
