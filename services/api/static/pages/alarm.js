// One alarm: what happened (its events) and who was told (its notifications).
import { api } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { fill, h, panel, severityBadge } from "../ui.js";
import { causeChip, causeEvidence } from "./availability.js";
import { deliveries } from "./notify.js";

export const NAME = "alarm";

export async function render(main, ctx) {
  const head = h("div", { class: "project-head" });
  const histBox = h("div", { class: "holder", id: "alarm-history" });
  const dlBox = h("div", { class: "holder", id: "alarm-deliveries" });
  main.replaceChildren(h("div", { class: "page alarm-page" }, head,
    h("div", { class: "grid" }, panel("alarm_history", histBox), panel("nt_deliveries", dlBox, { class: "wide" }))));
  await fill(histBox, async () => {
    const a = await api(`/alarms/${encodeURIComponent(ctx.alarm)}`);
    head.replaceChildren(h("h1", { class: "page-title" }, severityBadge(a.severity), " ", a.rule_name || a.rule, " · ", a.device_id),
      h("div", { class: "muted" }, `${a.project_id} · ${t(a.state)} · ${a.message}`),
      a.cause ? h("div", { class: "alarm-cause" }, causeChip(a.cause), " ", h("span", { class: "muted small" }, causeEvidence(a.cause))) : null);
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("time")), h("th", {}, t("state")), h("th", {}, t("severity")), h("th", {}, t("actor")))),
      h("tbody", {}, a.history.map((e) => h("tr", {}, h("td", {}, fmtTime(e.ts)), h("td", {}, t(e.transition)),
        h("td", {}, t(e.severity)), h("td", {}, e.actor || "–")))));
  });
  await fill(dlBox, () => deliveries(ctx.alarm));
  return {
    onTick() {
      fill(dlBox, () => deliveries(ctx.alarm));
    },
  };
}
