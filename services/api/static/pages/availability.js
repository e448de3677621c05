// 5G scorecard: communication service availability per flow against the project's targets
// (TS 22.261 / 22.104, docs/plant.md), and the root-cause chip alarms show elsewhere.
import { api } from "../api.js";
import { fmtNum, t } from "../i18n.js";
import { empty, fill, h, panel } from "../ui.js";

export const NAME = "availability";

// The evidence of a cause in one line: the link alarm, or the module's link KPIs.
export function causeEvidence(cause) {
  const kpis = cause?.evidence?.link_kpis;
  const link = cause?.evidence?.link_alarm;
  if (kpis) return `${kpis.device_id}: RSRP ${fmtNum(kpis.mean_rsrp_dbm)} dBm, SINR ${fmtNum(kpis.mean_sinr_db)} dB`;
  if (link) return `${link.device_id} · ${link.rule}${link.last_value == null ? "" : ` (${fmtNum(link.last_value)})`}`;
  return "";
}

// The 5G link's part in an alarm, as a chip linking to the link alarm when there is one.
export function causeChip(cause) {
  if (!cause) return null;
  const label = t(`cause_${cause.kind}`);
  const attrs = { class: `cause cause-${cause.kind}`, title: causeEvidence(cause), dataset: { cause: cause.kind } };
  return cause.alarm_id != null
    ? h("a", { ...attrs, href: `#/a/${encodeURIComponent(cause.alarm_id)}` }, label)
    : h("span", attrs, label);
}

const pct = (v, digits = 3) => (v == null ? "–" : `${fmtNum(v, digits)} %`);
const secs = (v) => {
  if (v == null) return "–";
  if (v < 120) return `${fmtNum(v, 1)} s`;
  if (v < 7200) return `${fmtNum(v / 60, 1)} min`;
  return `${fmtNum(v / 3600, 1)} h`;
};
const ms = (v) => (v == null ? "–" : `${fmtNum(v, 1)} ms`);
const verdict = (ok) => (ok == null ? "" : ok ? "met" : "missed");

function bandsCell(b) {
  const parts = ["excellent", "good", "fair", "poor"].map((k) => h("span", { class: `band band-${k}`, title: t(k) },
    b[k] == null ? "–" : `${fmtNum(b[k] * 100, 0)}%`));
  return h("td", { class: "bands" }, ...parts);
}

function tile(label, value, status, target) {
  return h("div", { class: `tile ${status}`, dataset: { kpi: label } },
    h("span", { class: "k" }, t(label)), h("b", {}, value),
    target ? h("span", { class: "target" }, target, status ? ` · ${t(status)}` : "") : null);
}

export async function render(main, ctx) {
  const pid = ctx.project;
  const enc = encodeURIComponent(pid);
  const tiles = h("div", { class: "holder", id: "av-tiles" });
  const flows = h("div", { class: "holder", id: "av-flows" });
  main.replaceChildren(h("div", { class: "page availability-page" },
    h("div", { class: "project-head" },
      h("h1", { class: "page-title" }, t("av_title"), " · ", h("a", { href: `#/p/${enc}` }, pid)),
      h("div", { class: "muted" }, t("av_hint"))),
    tiles,
    h("div", { class: "grid" }, panel("av_flows", flows, { class: "wide" }))));

  async function load() {
    const r = ctx.range();
    const s = await api(`/projects/${enc}/service-availability`, { params: { start: r.start, end: r.end } });
    const p = s.project;
    const tg = s.targets;
    tiles.replaceChildren(h("div", { class: "tiles" },
      tile("av_availability", pct(p.availability_pct), verdict(p.met.availability), `${t("target")} ≥ ${pct(tg.availability_pct, 3)}`),
      tile("av_flows_met", `${p.flows_meeting_target} / ${p.flows}`, "", null),
      tile("av_outages", fmtNum(p.outages, 0), "", null),
      tile("av_longest", secs(p.longest_outage_s), "", null),
      tile("av_unavailable", secs(p.unavailable_s), "", null),
      tile("latency_p99", ms(p.latency_ms.p99), verdict(p.met.latency_p99), `${t("target")} ≤ ${ms(tg.latency_p99_ms)}`),
    ));
    if (!s.devices.length) return empty("no_data");
    const head = ["device", "av_deadline", "av_availability", "av_outages", "av_longest", "p50", "p95", "p99", "av_rsrp_bands", "av_sinr_bands"];
    return h("table", { class: "table av-table" },
      h("thead", {}, h("tr", {}, head.map((k) => h("th", {}, t(k))))),
      h("tbody", {}, s.devices.map((f) => h("tr", { dataset: { device: f.device_id } },
        h("td", {}, h("a", { href: `#/p/${enc}/d/${encodeURIComponent(f.device_id)}` }, f.device_id),
          f.profile ? h("span", { class: "muted small" }, ` (${f.profile})`) : null),
        h("td", {}, `${fmtNum(f.transfer_interval_s)} + ${fmtNum(f.survival_time_s)} s`),
        h("td", { class: `v ${verdict(f.met.availability)}` }, pct(f.availability_pct)),
        h("td", {}, fmtNum(f.outages, 0)),
        h("td", {}, secs(f.longest_outage_s)),
        h("td", {}, ms(f.latency_ms.p50)),
        h("td", {}, ms(f.latency_ms.p95)),
        h("td", { class: `v ${verdict(f.met.latency_p99)}` }, ms(f.latency_ms.p99)),
        bandsCell(f.rsrp_bands),
        bandsCell(f.sinr_bands)))));
  }

  await fill(flows, load);
  let last = Date.now();
  return {
    onTick() {
      if (Date.now() - last > 30000) {
        last = Date.now();
        fill(flows, load);
      }
    },
  };
}
