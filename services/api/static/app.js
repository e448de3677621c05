// The dashboard shell: sign-in, hash routes, time range, language, one live stream.
import { api, getKey, liveStream, setKey } from "./api.js";
import { disposeAll } from "./charts.js";
import { applyStatic, currentLang, setLang, t } from "./i18n.js";
import { h, failure, loading } from "./ui.js";
import * as portfolio from "./pages/portfolio.js";
import * as project from "./pages/project.js";
import * as device from "./pages/device.js";
import * as notify from "./pages/notify.js";
import * as alarm from "./pages/alarm.js";
import * as admin from "./pages/admin.js";
import * as floor from "./pages/floor.js";
import * as availability from "./pages/availability.js";
import * as oee from "./pages/oee.js";

const RANGES = { h1: 3600, h6: 6 * 3600, h24: 86400, d7: 7 * 86400, d30: 30 * 86400 };
const main = document.getElementById("main");
const rangeSel = document.getElementById("range");
const liveDot = document.getElementById("live");
let current = null;
let me = null;
let stopLive = null;

const fromInput = document.getElementById("from");
const toInput = document.getElementById("to");

function rangeKey() {
  const k = localStorage.getItem("f5g.range");
  return k in RANGES || k === "custom" ? k : "h24";
}

// datetime-local works in local time without a zone: convert both ways explicitly.
function toLocalInput(d) {
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

// The chosen range, evaluated at each load: presets end now, a custom range is fixed.
function timeRange() {
  if (rangeKey() === "custom" && fromInput.value && toInput.value) {
    const start = new Date(fromInput.value);
    const end = new Date(toInput.value);
    if (end > start) return { start: start.toISOString(), end: end.toISOString(), seconds: (end - start) / 1000 };
  }
  const secs = RANGES[rangeKey()] || RANGES.h24;
  const end = new Date();
  const start = new Date(end.getTime() - secs * 1000);
  return { start: start.toISOString(), end: end.toISOString(), seconds: secs };
}

function fillRanges() {
  const keys = [...Object.keys(RANGES), "custom"];
  rangeSel.replaceChildren(...keys.map((k) => h("option", { value: k, selected: k === rangeKey() }, t(k))));
  document.getElementById("custom").hidden = rangeKey() !== "custom";
}

function setLive(on) {
  liveDot.className = `live ${on ? "on" : "off"}`;
  liveDot.textContent = t(on ? "live_on" : "live_off");
  document.body.dataset.live = on ? "1" : "0";
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "p" && parts[1] && parts[2] === "d" && parts[3]) return { page: device, project: parts[1], device: parts[3] };
  if (parts[0] === "p" && parts[1] && parts[2] === "floor") return { page: floor, project: parts[1] };
  if (parts[0] === "p" && parts[1] && parts[2] === "availability") return { page: availability, project: parts[1] };
  if (parts[0] === "p" && parts[1] && parts[2] === "oee") return { page: oee, project: parts[1] };
  if (parts[0] === "p" && parts[1]) return { page: project, project: parts[1] };
  if (parts[0] === "notify") return { page: notify };
  if (parts[0] === "a" && parts[1]) return { page: alarm, alarm: parts[1] };
  if (parts[0] === "admin") return { page: admin };
  return { page: portfolio };
}

function crumbs(r) {
  const nav = document.getElementById("crumbs");
  const items = [h("a", { href: "#/" }, t("portfolio"))];
  if (r.project) items.push(h("span", { class: "sep" }, "›"), h("a", { href: `#/p/${encodeURIComponent(r.project)}` }, r.project));
  if (r.device) items.push(h("span", { class: "sep" }, "›"), h("span", {}, r.device));
  if (r.alarm) items.push(h("span", { class: "sep" }, "›"), h("span", {}, `#${r.alarm}`));
  if (me?.scope === "admin") items.push(h("span", { class: "sep" }, "·"), h("a", { href: "#/notify", id: "nav-notify" }, t("notifications")));
  nav.replaceChildren(...items);
}

// One stream per page: the device page also asks for its device's own messages.
function connectLive(r) {
  stopLive?.();
  stopLive = liveStream(r.device ? { project: r.project, device: r.device } : {}, {
    onState: setLive,
    onEvent: (event, data) => {
      if (event === "alarm") current?.onAlarm?.(data);
      if (event === "record") current?.onRecord?.(data);
      if (event === "tick") current?.onTick?.();
    },
  });
}

async function show() {
  if (current?.dispose) current.dispose();
  current = null;
  disposeAll();
  const r = route();
  crumbs(r);
  connectLive(r);
  main.replaceChildren(loading());
  document.body.dataset.page = r.page.NAME;
  current = await r.page.render(main, { me, range: timeRange, project: r.project, device: r.device, alarm: r.alarm });
}

function login(message) {
  stopLive?.();
  document.body.dataset.page = "login";
  const input = h("input", { id: "key", type: "password", autocomplete: "off", placeholder: "f5g_…", required: true });
  const form = h(
    "form",
    { class: "login panel", onsubmit: async (e) => {
      e.preventDefault();
      setKey(input.value.trim());
      await start();
    } },
    h("h1", {}, t("login_title")),
    h("p", {}, t("login_hint")),
    message ? h("p", { class: "bad" }, message) : null,
    h("label", {}, t("login_key"), input),
    h("button", { type: "submit", id: "signin" }, t("login_go")),
  );
  main.replaceChildren(form);
  input.focus();
}

async function start() {
  if (!getKey()) return login();
  try {
    me = await api("/dashboard/me");
  } catch (e) {
    if (e.status === 401) {
      setKey(null);
      return login(t("login_bad"));
    }
    main.replaceChildren(failure(e, start));
    return;
  }
  document.body.dataset.scope = me.scope;
  document.getElementById("admin-link").hidden = me.scope !== "admin";
  await show();
}

document.getElementById("lang").addEventListener("click", async () => {
  setLang(currentLang() === "zh" ? "en" : "zh");
  document.getElementById("lang").textContent = currentLang() === "zh" ? "English" : "中文";
  applyStatic();
  fillRanges();
  if (me) await show();
  else login();
});
document.getElementById("logout").addEventListener("click", () => {
  setKey(null);
  me = null;
  login();
});
rangeSel.addEventListener("change", async () => {
  if (rangeSel.value === "custom" && !fromInput.value) {
    toInput.value = toLocalInput(new Date());
    fromInput.value = toLocalInput(new Date(Date.now() - 86400000));
  }
  localStorage.setItem("f5g.range", rangeSel.value);
  document.getElementById("custom").hidden = rangeSel.value !== "custom";
  if (me) await show();
});
for (const input of [fromInput, toInput]) {
  input.addEventListener("change", async () => {
    localStorage.setItem("f5g.custom", JSON.stringify([fromInput.value, toInput.value]));
    if (me) await show();
  });
}
try {
  [fromInput.value, toInput.value] = JSON.parse(localStorage.getItem("f5g.custom")) || ["", ""];
} catch {
  localStorage.removeItem("f5g.custom");
}
window.addEventListener("hashchange", () => me && show());

setLang(currentLang());
document.getElementById("lang").textContent = currentLang() === "zh" ? "English" : "中文";
applyStatic();
fillRanges();
setLive(false);
start();
