// Notifications (admin keys): channels, routes and escalation policies; a test notice per
// route, delivered by the notifier, with its delivery state polled until it settles.
import { api } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { empty, fill, h, panel, toast } from "../ui.js";

export const NAME = "notify";
const SETTLED = new Set(["sent", "gave_up"]);

function table(heads, rows) {
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, heads.map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows));
}

function configText(config) {
  return Object.entries(config).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

async function pollDelivery(id, cell) {
  for (let i = 0; i < 60; i++) {
    const d = (await api(`/notify/deliveries/${id}`)).items[0];
    cell.dataset.state = d.state;
    cell.textContent = `${t(`dl_${d.state}`)}${d.last_status ? ` (${d.last_status})` : ""}`;
    if (SETTLED.has(d.state)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function render(main, ctx) {
  const chBox = h("div", { class: "holder", id: "notify-channels" });
  const rtBox = h("div", { class: "holder", id: "notify-routes" });
  const poBox = h("div", { class: "holder", id: "notify-policies" });
  main.replaceChildren(h("div", { class: "page notify-page" },
    h("h1", { class: "page-title" }, t("notifications")),
    h("p", { class: "muted" }, t("notify_hint")),
    h("div", { class: "grid" },
      panel("nt_channels", chBox, { class: "wide" }),
      panel("nt_routes", rtBox, { class: "wide" }),
      panel("nt_policies", poBox, { class: "wide" }))));
  if (ctx.me?.scope !== "admin") {
    chBox.replaceChildren(empty("admin_only"));
    return {};
  }
  const channels = {};
  await fill(chBox, async () => {
    const items = (await api("/notify/channels")).items;
    if (!items.length) return empty("no_channels");
    for (const c of items) channels[c.id] = c;
    return table(["name", "nt_type", "project", "nt_config", "nt_enabled"], items.map((c) =>
      h("tr", { dataset: { channelId: c.id } }, h("td", {}, c.name), h("td", {}, c.type),
        h("td", {}, c.project_id || t("all_projects")), h("td", { class: "small config" }, configText(c.config)),
        h("td", {}, c.enabled ? "✓" : "✗"))));
  });
  await fill(rtBox, async () => {
    const items = (await api("/notify/routes")).items;
    if (!items.length) return empty("no_routes");
    return table(["name", "project", "nt_channel", "nt_filters", "nt_language", "nt_quiet", ""], items.map((r) => {
      const result = h("span", { class: "test-result small" });
      const filters = [r.min_severity && `≥ ${t(r.min_severity)}`, r.severities?.join(","), r.rules?.join(","),
        r.device_kinds?.join(","), r.tags?.join(","), r.escalation_only && t("escalation_only")].filter(Boolean).join(" · ");
      const button = h("button", { type: "button", class: "send-test", onclick: async () => {
        button.disabled = true;
        try {
          const sent = await api(`/notify/routes/${r.id}/test`, { method: "POST" });
          result.dataset.deliveryId = sent.delivery_id;
          await pollDelivery(sent.delivery_id, result);
        } catch (e) {
          toast(e.status === 403 ? t("forbidden") : e.message, "error");
        } finally {
          button.disabled = false;
        }
      } }, t("send_test"));
      return h("tr", { dataset: { routeId: r.id } }, h("td", {}, r.name), h("td", {}, r.project_id || t("all_projects")),
        h("td", {}, channels[r.channel_id]?.name || r.channel_id), h("td", { class: "small" }, filters || "–"),
        h("td", {}, r.language), h("td", { class: "small" }, r.quiet_start ? `${r.quiet_start}–${r.quiet_end} ${r.quiet_tz}` : "–"),
        h("td", {}, button, " ", result));
    }));
  });
  await fill(poBox, async () => {
    const items = (await api("/notify/policies")).items;
    if (!items.length) return empty("no_policies");
    return table(["name", "project", "nt_steps", "nt_reminders"], items.map((p) =>
      h("tr", { dataset: { policyId: p.id } }, h("td", {}, p.name), h("td", {}, p.project_id || t("all_projects")),
        h("td", { class: "small" }, p.steps.map((s) => `${s.after_s} s → #${s.route_id}`).join(" · ") || "–"),
        h("td", { class: "small" }, p.reminder_interval_s ? `${p.reminder_interval_s} s × ${p.reminder_max}` : "–"))));
  });
  return {};
}

// An alarm's notifications, for the alarm page.
export async function deliveries(alarmId) {
  const items = (await api(`/alarms/${alarmId}/deliveries`)).items;
  if (!items.length) return empty("no_deliveries");
  return table(["time", "nt_kind", "nt_channel", "state", "nt_attempts", "nt_answer"], items.map((d) =>
    h("tr", { dataset: { deliveryId: d.id, state: d.state } }, h("td", {}, fmtTime(d.sent_at || d.created_at)),
      h("td", {}, t(`kind_${d.kind}`)), h("td", {}, d.channel_type),
      h("td", {}, t(`dl_${d.state}`)), h("td", {}, d.attempts),
      h("td", { class: "small" }, [d.last_status, d.last_answer].filter(Boolean).join(" "), h("br"), h("code", { class: "small" }, d.idempotency_key)))));
}
