// Administration for admin keys: devices waiting for registration, broker credentials,
// API keys, retention and the audit trail. Every act goes through the public API with the
// admin's own key, so the API's checks and its audit trail apply unchanged. Secrets
// (tokens, passwords) are shown once, in the page only, never stored by it.
import { api } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { empty, fill, h, panel, toast } from "../ui.js";

export const NAME = "admin";

function table(cols, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, t(c))))),
    h("tbody", {}, rows));
}

function secret(labelKey, value) {
  // Shown once: the page keeps it only in this element.
  return h("div", { class: "secret", role: "alert" },
    h("strong", {}, t(labelKey)), " ", h("code", { class: "secret-value" }, value),
    h("p", { class: "muted" }, t("shown_once")));
}

async function act(fn, reload) {
  try {
    await fn();
    await reload();
  } catch (e) {
    toast(`${t("error")}: ${e.message}`, "bad");
  }
}

function devicesPanel() {
  const box = h("div", {});
  const load = () => fill(box, async () => {
    const page = await api("/devices", { params: { status: "unregistered", limit: 200 } });
    if (!page.items.length) return empty("no_unregistered");
    return table(["project", "device", "kind", "profiles", "line", ""], page.items.map((d) => {
      const profiles = h("input", { name: "profiles", value: d.kind, size: 14, "aria-label": t("profiles") });
      const line = h("input", { name: "line", size: 8, "aria-label": t("line") });
      return h("tr", { dataset: { device: d.device_id, project: d.project_id } },
        h("td", {}, d.project_id), h("td", {}, d.device_id), h("td", {}, d.kind),
        h("td", {}, profiles), h("td", {}, line),
        h("td", {}, h("button", { type: "button", class: "register", onclick: () => act(() => api(
          `/projects/${encodeURIComponent(d.project_id)}/devices`, { method: "POST", body: {
            device_id: d.device_id, kind: d.kind,
            profiles: profiles.value.split(",").map((s) => s.trim()).filter(Boolean),
            metadata: line.value.trim() ? { line: line.value.trim() } : {},
          } }), load) }, t("register"))));
    }));
  });
  load();
  return panel("admin_devices", box, { dataset: { admin: "devices" } });
}

function keysPanel() {
  const box = h("div", {});
  const out = h("div", {});
  const load = () => fill(box, async () => {
    const page = await api("/keys");
    return table(["prefix", "name", "scope", "projects", "created", "revoked", ""], page.items.map((k) =>
      h("tr", { dataset: { prefix: k.prefix } },
        h("td", {}, h("code", {}, k.prefix)), h("td", {}, k.name), h("td", {}, k.scope),
        h("td", {}, k.projects ? k.projects.join(", ") : t("all")), h("td", {}, fmtTime(k.created_at)),
        h("td", {}, k.revoked_at ? fmtTime(k.revoked_at) : "–"),
        h("td", {}, k.revoked_at ? null : h("button", { type: "button", class: "revoke", onclick: () => act(
          () => api(`/keys/${encodeURIComponent(k.prefix)}/revoke`, { method: "POST" }), load) }, t("revoke"))))));
  });
  const name = h("input", { name: "key_name", required: true, "aria-label": t("name") });
  const scope = h("select", { name: "key_scope" }, ["read", "operate", "admin"].map((s) => h("option", { value: s }, s)));
  const form = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    act(async () => {
      const made = await api("/keys", { method: "POST", body: { name: name.value.trim(), scope: scope.value } });
      out.replaceChildren(secret("token", made.token));
    }, load);
  } }, h("label", {}, t("name"), name), h("label", {}, t("scope"), scope), h("button", { type: "submit" }, t("create")));
  load();
  return panel("admin_keys", h("div", {}, form, out, box), { dataset: { admin: "keys" } });
}

const CRED_FIELDS = {
  native: ["project", "kind", "device"],
  sparkplug: ["group", "node"],
  vda5050: ["manufacturer", "serial"],
  alarms: ["project", "name"],
};

function credentialsPanel() {
  const box = h("div", {});
  const out = h("div", {});
  const load = () => fill(box, async () => {
    const page = await api("/credentials", { params: { limit: 200 } });
    if (!page.items.length) return empty("no_credentials");
    return table(["type", "username", "project", "created", ""], page.items.map((c) =>
      h("tr", { dataset: { credential: c.id } },
        h("td", {}, c.type), h("td", {}, h("code", {}, c.username)), h("td", {}, c.project_id),
        h("td", {}, fmtTime(c.created_at)),
        h("td", {}, h("button", { type: "button", class: "revoke", onclick: () => act(
          () => api(`/credentials/${c.id}/revoke`, { method: "POST" }), load) }, t("revoke"))))));
  });
  const type = h("select", { name: "cred_type" }, Object.keys(CRED_FIELDS).map((k) => h("option", { value: k }, t(`cred_${k}`))));
  const fields = h("span", {});
  const inputs = {};
  const showFields = () => {
    for (const k of Object.keys(inputs)) delete inputs[k];
    fields.replaceChildren(...CRED_FIELDS[type.value].map((f) => {
      inputs[f] = h("input", { name: `cred_${f}`, required: true, size: 10, "aria-label": t(f) });
      return h("label", {}, t(f), inputs[f]);
    }));
  };
  type.addEventListener("change", showFields);
  showFields();
  const form = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    act(async () => {
      const body = { type: type.value };
      for (const [k, input] of Object.entries(inputs)) body[k] = input.value.trim();
      const made = await api("/credentials", { method: "POST", body });
      out.replaceChildren(secret("password", made.password),
        h("p", {}, `${t("username")}: `, h("code", {}, made.username)));
    }, load);
  } }, h("label", {}, t("type"), type), fields, h("button", { type: "submit" }, t("issue")));
  load();
  return panel("admin_credentials", h("div", {}, form, out, box), { dataset: { admin: "credentials" } });
}

function retentionPanel() {
  const box = h("div", {});
  const load = () => fill(box, async () => {
    const { targets } = await api("/retention");
    return table(["store", "size", "keep_days", "next_drop", ""], Object.entries(targets).map(([name, r]) => {
      const days = h("input", { type: "number", min: "0.05", step: "any", size: 6, name: `keep_${name}`,
        value: r.keep_s ? +(r.keep_s / 86400).toFixed(2) : "", "aria-label": t("keep_days") });
      return h("tr", { dataset: { store: name } },
        h("td", {}, name), h("td", {}, `${(r.bytes / 1048576).toFixed(1)} MiB`), h("td", {}, days),
        h("td", {}, r.next_drop_at ? fmtTime(r.next_drop_at) : t("kept_forever")),
        h("td", {}, h("button", { type: "button", onclick: () => act(() => (days.value
          ? api(`/retention/policies/${name}`, { method: "PUT", body: { keep_days: Number(days.value) } })
          : api(`/retention/policies/${name}`, { method: "DELETE" })), load) }, t("save"))));
    }));
  });
  load();
  return panel("admin_retention", box, { dataset: { admin: "retention" } });
}

// Alarms the running rules and the edited document would have raised over the replayed days.
function backtestResult(bt) {
  if (!bt.result) return h("p", { class: "muted backtest-result", dataset: { status: bt.status } }, bt.error || t("backtest_running"));
  const { current, candidate } = bt.result;
  const rules = [...new Set([...Object.keys(current.rules), ...Object.keys(candidate.rules)])].sort();
  const n = (side, rule, k) => side.rules[rule]?.[k] ?? 0;
  return h("div", { class: "backtest-result", dataset: { status: bt.status } },
    h("p", {}, `${t("backtest_records")}: ${candidate.records}`),
    rules.length ? table(["rule", "opened_now", "opened_new", "cleared_new", "flaps_new"], rules.map((r) =>
      h("tr", { dataset: { rule: r } }, h("td", {}, r), h("td", {}, n(current, r, "opened")),
        h("td", { class: "new-opened" }, n(candidate, r, "opened")), h("td", {}, n(candidate, r, "cleared")),
        h("td", {}, n(candidate, r, "flaps"))))) : empty("no_alarms"));
}

function rulesPanel() {
  const box = h("div", {});
  const out = h("div", { class: "rules-outcome" });
  const text = h("textarea", { name: "rules_yaml", rows: 14, spellcheck: "false", "aria-label": t("admin_rules") });
  const load = () => fill(box, async () => {
    const { active, versions } = await api("/rules");
    if (active && !text.value) text.value = active.yaml;
    const current = active
      ? h("p", { class: "rules-active", dataset: { version: active.id } },
        `${t("rules_active")} v${active.id} · ${active.created_by} · ${fmtTime(active.created_at)}`)
      : h("p", { class: "rules-active muted" }, t("rules_file"));
    if (!versions.length) return current;
    return h("div", {}, current, table(["version", "status", "actor", "time", "message"], versions.map((v) =>
      h("tr", { dataset: { version: v.id, status: v.status } },
        h("td", {}, `v${v.id}`), h("td", {}, t(`rstate_${v.status}`)), h("td", {}, v.created_by),
        h("td", {}, fmtTime(v.created_at)), h("td", {}, v.error || "")))));
  });
  const form = h("form", { class: "rules-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const v = await api("/rules", { method: "PUT", body: { yaml: text.value } });
      out.replaceChildren(h("p", { class: "ok", dataset: { status: v.status } }, `v${v.id}: ${t(`rstate_${v.status}`)}`));
    } catch (err) {
      out.replaceChildren(h("pre", { class: "bad rules-error" }, err.message));
    }
    await load();
  } }, text,
  h("button", { type: "button", class: "backtest", onclick: async () => {
    out.replaceChildren(h("p", { class: "muted" }, t("backtest_running")));
    try {
      const bt = await api("/rules/backtest", { method: "POST", body: { yaml: text.value, days: 7 } });
      out.replaceChildren(backtestResult(bt));
    } catch (err) {
      out.replaceChildren(h("pre", { class: "bad rules-error" }, err.message));
    }
  } }, t("backtest")),
  h("button", { type: "submit" }, t("rules_submit")));
  load();
  return panel("admin_rules", h("div", {}, form, out, box, effectiveRules()), { dataset: { admin: "rules" } });
}

function shown(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// The rules a device gets, every setting with the layer it came from and where that layer
// wrote it, as the running rules service resolves them (GET /rules/effective).
function effectiveRules() {
  const out = h("div", { class: "effective-result" });
  const project = h("input", { name: "eff_project", required: true, size: 10, "aria-label": t("project") });
  const device = h("input", { name: "eff_device", required: true, size: 12, "aria-label": t("device") });
  const kinds = h("input", { name: "eff_kinds", size: 14, placeholder: t("eff_kinds_hint"), "aria-label": t("eff_kinds_hint") });
  const form = h("form", { class: "inline effective-form", onsubmit: (e) => {
    e.preventDefault();
    fill(out, async () => {
      const query = new URLSearchParams({ project: project.value.trim(), device: device.value.trim() });
      // Several profiles repeat the parameter.
      for (const k of kinds.value.split(",").map((x) => x.trim()).filter(Boolean)) query.append("profile", k);
      const eff = await api(`/rules/effective?${query}`);
      const rows = eff.rules.flatMap((r) => r.settings.map((v) =>
        h("tr", { dataset: { rule: r.rule, key: v.key, layer: v.layer }, class: r.enabled ? null : "muted" },
          h("td", {}, r.rule), h("td", {}, r.kind), h("td", {}, h("code", {}, v.key)),
          h("td", { class: "eff-value" }, shown(v.value)), h("td", { class: "eff-layer" }, h("code", {}, v.layer)),
          h("td", { class: "eff-source" }, v.source || t("eff_builtin")))));
      return h("div", {},
        h("p", { class: "muted" }, `${eff.kinds.join(", ")} · ${eff.version ? `v${eff.version}` : eff.source}`),
        rows.length ? table(["rule", "eff_brought_by", "eff_setting", "value", "eff_layer", "eff_source"], rows)
          : empty("eff_none"));
    });
  } }, h("label", {}, t("project"), project), h("label", {}, t("device"), device),
  h("label", {}, t("profiles"), kinds), h("button", { type: "submit" }, t("eff_show")));
  return h("section", { class: "effective-rules", dataset: { admin: "effective" } },
    h("h3", {}, t("eff_title")), form, out);
}

function auditPanel() {
  const box = h("div", {});
  const load = () => fill(box, async () => {
    const page = await api("/audit", { params: { limit: 50 } });
    if (!page.items.length) return empty("no_audit");
    return table(["time", "actor", "action", "audit_target", "project"], page.items.map((a) =>
      h("tr", { dataset: { action: a.action } },
        h("td", {}, fmtTime(a.ts)), h("td", {}, a.actor), h("td", {}, h("code", {}, a.action)),
        h("td", {}, `${a.target_type} ${a.target_id}`), h("td", {}, a.project_id || "–"))));
  });
  load();
  return panel("admin_audit", box, { dataset: { admin: "audit" } });
}

export async function render(main, ctx) {
  if (ctx.me?.scope !== "admin") {
    main.replaceChildren(h("div", { class: "state error", role: "alert" }, t("forbidden")));
    return {};
  }
  const page = h("div", { class: "admin-page" },
    h("h1", {}, t("admin")),
    devicesPanel(), rulesPanel(), credentialsPanel(), keysPanel(), retentionPanel(), auditPanel());
  main.replaceChildren(page);
  return {};
}
