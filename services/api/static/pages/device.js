// One device: its last values, recent series, its alarms, its commands and its dead letters.
import { api } from "../api.js";
import { draw, line, timeAxis } from "../charts.js";
import { fmtNum, fmtTime, isInstant, t } from "../i18n.js";
import { empty, fill, h, panel, severityBadge } from "../ui.js";
import { causeChip } from "./availability.js";

export const NAME = "device";
const FIELDS = {
  inspection: ["confidence", "inference_ms", "defect_count"],
  agv: ["battery", "speed", "localization"],
  link: ["latency_ms", "rsrp", "sinr", "loss_pct"],
};

function valueText(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmtNum(v, 3);
  if (typeof v === "boolean") return v ? "✓" : "✗";
  if (isInstant(v)) return fmtTime(v);
  if (typeof v === "object" && typeof v.value === "number") return fmtNum(v.value, 3);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function lastTable(last) {
  const rows = [];
  for (const [stream, rec] of Object.entries(last)) {
    for (const [k, v] of Object.entries(rec)) rows.push(h("tr", {}, h("td", { class: "muted" }, stream), h("th", {}, k), h("td", {}, valueText(v))));
  }
  if (!rows.length) return empty("no_data");
  return h("table", { class: "table" }, h("thead", {}, h("tr", {}, h("th", {}, t("stream")), h("th", {}, ""), h("th", {}, t("value")))), h("tbody", {}, rows));
}

export async function render(main, ctx) {
  const pid = ctx.project;
  const did = ctx.device;
  const base = `/projects/${encodeURIComponent(pid)}/devices/${encodeURIComponent(did)}`;
  const head = h("div", { class: "project-head" });
  const lastBox = h("div", { class: "holder" });
  const seriesBox = h("div", { class: "charts-col" });
  const alarmsBox = h("div", { class: "holder" });
  const deadBox = h("div", { class: "holder" });
  const cmdBox = h("div", { class: "holder commands" });
  main.replaceChildren(h("div", { class: "page device-page" }, head,
    h("div", { class: "grid" },
      panel("last_values", lastBox),
      panel("recent", seriesBox, { class: "wide" }),
      panel("its_alarms", alarmsBox),
      panel("commands", cmdBox),
      panel("dead_letters", deadBox))));

  let dev = null;
  async function loadDevice() {
    dev = await api(base);
    head.replaceChildren(h("h1", { class: "page-title" }, did),
      h("div", { class: "muted" }, `${t("kind")}: ${dev.kind} · ${dev.online ? t("online") : t("offline")} · ${t("last_seen")}: ${fmtTime(dev.last_seen)}`));
    return lastTable(dev.last);
  }

  async function loadSeries() {
    const r = ctx.range();
    const jobs = [];
    for (const stream of Object.keys(dev.last)) {
      const fields = stream === "telemetry" ? Object.keys(dev.last.telemetry).filter((k) => typeof dev.last.telemetry[k] === "number" || typeof dev.last.telemetry[k]?.value === "number") : FIELDS[stream] || [];
      for (const field of fields) jobs.push([stream, field]);
    }
    if (!jobs.length) return empty("no_data");
    const results = await Promise.all(jobs.map(([stream, field]) =>
      api(`/projects/${encodeURIComponent(pid)}/series`, { params: { stream, field, device: did, start: r.start, end: r.end, points: 240 } })));
    const boxes = results.map((s, i) => {
      const box = h("div", { class: "chart-box small" });
      const wrap = h("div", { class: "sub" }, h("h3", {}, `${jobs[i][0]} · ${jobs[i][1]}`), box);
      setTimeout(() => draw(box, `${jobs[i][0]}.${jobs[i][1]}`, {
        xAxis: timeAxis(r),
        series: [line(t("avg"), s.points.map((p) => [p.t, p.avg])),
          line(t("min"), s.points.map((p) => [p.t, p.min]), { lineStyle: { type: "dashed", opacity: 0.5 } }),
          line(t("max"), s.points.map((p) => [p.t, p.max]), { lineStyle: { type: "dashed", opacity: 0.5 } })],
      }, s.points.length));
      return wrap;
    });
    return h("div", { class: "charts-grid" }, boxes);
  }

  async function loadAlarms() {
    const page = await api("/alarms", { params: { project: pid, device: did, limit: 50 } });
    if (!page.items.length) return empty("no_alarms_device");
    return h("ul", { class: "feed" }, page.items.map((a) =>
      h("li", { class: `alarm state-${a.state}`, dataset: { alarmId: a.id, state: a.state } }, severityBadge(a.severity),
        h("div", { class: "what" }, h("a", { href: `#/a/${a.id}`, class: "alarm-link" }, h("b", { title: a.rule }, a.rule_name || a.rule)), a.cause ? [" ", causeChip(a.cause)] : null,
          h("div", { class: "muted small" }, a.message)),
        h("div", { class: "when small" }, h("span", { class: `st st-${a.state}` }, t(a.state)), h("br"), fmtTime(a.opened_at)))));
  }

  async function loadDead() {
    const r = ctx.range();
    const page = await api(`${base}/dead-letters`, { params: { start: r.start, end: r.end, limit: 50 } });
    if (!page.items.length) return empty("no_dead_letters");
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("time")), h("th", {}, t("reason")), h("th", {}, t("detail")))),
      h("tbody", {}, page.items.map((d) => h("tr", {}, h("td", {}, fmtTime(d.received_at)), h("td", {}, h("code", {}, d.reason)), h("td", { class: "small" }, d.detail)))));
  }

  // Commands: the names the project allows for this kind (operate keys get a button and a
  // confirmation step), and the device's history, followed until every command is over.
  const OPEN = new Set(["queued", "sent", "accepted"]);
  let following = null;
  function history(items) {
    if (!items.length) return empty("no_commands");
    return h("table", { class: "table command-history" },
      h("thead", {}, h("tr", {}, h("th", {}, t("time")), h("th", {}, t("command")), h("th", {}, t("state")), h("th", {}, t("actor")))),
      h("tbody", {}, items.map((c) => h("tr", { dataset: { commandId: c.id, state: c.state } },
        h("td", {}, fmtTime(c.created_at)), h("td", {}, h("code", {}, c.name)),
        h("td", {}, h("span", { class: `st st-${c.state}` }, t(`cmd_${c.state}`)), c.message ? h("div", { class: "muted small" }, c.message) : null),
        h("td", { class: "small" }, c.actor)))));
  }
  async function loadCommands() {
    const [allow, page] = await Promise.all([
      api(`/projects/${encodeURIComponent(pid)}/command-allowlist`),
      api(`${base}/commands`, { params: { limit: 20 } }),
    ]);
    const names = allow.items.filter((a) => a.kind === dev.kind).map((a) => a.name);
    const bar = h("div", { class: "command-bar" });
    if (!ctx.me.can_operate) bar.append(h("span", { class: "chip" }, t("read_only")));
    else if (!names.length) bar.append(h("span", { class: "muted small" }, t("no_commands_allowed")));
    for (const name of ctx.me.can_operate ? names : []) {
      bar.append(h("button", { type: "button", class: "command", dataset: { command: name }, onclick: () => confirmSend(bar, name) }, name));
    }
    if (page.items.some((c) => OPEN.has(c.state))) follow();
    return h("div", {}, bar, history(page.items));
  }
  function confirmSend(bar, name) {
    const box = h("div", { class: "confirm", role: "dialog" },
      h("span", {}, `${t("confirm_send")} ${name} → ${did}?`),
      h("button", { type: "button", class: "confirm-yes", onclick: () => send(name) }, t("send")),
      h("button", { type: "button", class: "confirm-no", onclick: () => box.remove() }, t("cancel")));
    bar.querySelector(".confirm")?.remove();
    bar.append(box);
  }
  async function send(name) {
    try {
      await api(`${base}/commands`, { method: "POST", body: { name } });
    } catch (err) {
      cmdBox.prepend(h("div", { class: "state error", role: "alert" }, err.message));
      return;
    }
    await fill(cmdBox, loadCommands);
  }
  function follow() {
    if (following) return;
    following = setInterval(async () => {
      const page = await api(`${base}/commands`, { params: { limit: 20 } }).catch(() => null);
      if (!page) return;
      const table = cmdBox.querySelector(".command-history, .state.empty");
      if (table) table.replaceWith(history(page.items));
      if (!page.items.some((c) => OPEN.has(c.state))) {
        clearInterval(following);
        following = null;
      }
    }, 500);
  }

  const refresh = async () => {
    await fill(lastBox, loadDevice);
    if (dev) await Promise.all([fill(seriesBox, loadSeries), fill(alarmsBox, loadAlarms), fill(deadBox, loadDead), fill(cmdBox, loadCommands)]);
  };
  await refresh();
  let last = Date.now();
  return {
    // The device's records as ingest stored them (the live stream forwards only accepted
    // ones, shaped like `dev.last`): a newer record replaces its row, never merges into it,
    // so the table shows what a reload shows.
    onRecord(ev) {
      if (!dev || ev.device !== did) return;
      const newer = (rec, cur) => !cur || Date.parse(rec.ts) >= Date.parse(cur.ts);
      for (const rec of ev.records) {
        if (ev.stream === "telemetry") {
          const metrics = { ...(dev.last.telemetry || {}) };
          for (const [m, x] of Object.entries(rec)) if (newer(x, metrics[m])) metrics[m] = x;
          dev.last.telemetry = metrics;
        } else if (newer(rec, dev.last[ev.stream])) {
          dev.last[ev.stream] = rec;
        }
      }
      lastBox.replaceChildren(lastTable(dev.last));
      // Which streams the live feed delivered, one entry per record, in arrival order: a
      // periodic refresh can show a stored row before its live event, so a count of what was
      // on the page would not say what was forwarded.
      lastBox.dataset.liveStreams = (lastBox.dataset.liveStreams || "") + ev.records.map(() => `${ev.stream} `).join("");
    },
    onAlarm(ev) {
      if (ev.project === pid && ev.device === did) fill(alarmsBox, loadAlarms);
    },
    onTick() {
      if (Date.now() - last > 15000) {
        last = Date.now();
        refresh();
      }
    },
  };
}
