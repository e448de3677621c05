// Small DOM helpers and the designed loading, empty and error states.
import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function loading() {
  return h("div", { class: "state loading", role: "status" }, h("span", { class: "spinner" }));
}

export function empty(key) {
  return h("div", { class: "state empty" }, h("span", { class: "icon" }, "∅"), h("span", {}, t(key)));
}

export function failure(err, retry) {
  return h(
    "div",
    { class: "state error", role: "alert" },
    h("span", { class: "icon" }, "!"),
    h("span", {}, `${t("error")}: ${err.message || err}`),
    retry ? h("button", { type: "button", onclick: retry }, t("retry")) : null,
  );
}

// Run `load` and put its result into `box`, showing loading first and the error if it fails.
export async function fill(box, load) {
  if (!box.firstChild) box.replaceChildren(loading());
  try {
    const content = await load();
    if (content) box.replaceChildren(content);
  } catch (e) {
    box.replaceChildren(failure(e, () => fill(box, load)));
  }
}

export function panel(titleKey, body, extra = {}) {
  return h("section", { class: `panel ${extra.class || ""}`, dataset: extra.dataset },
    h("h2", {}, t(titleKey)), body);
}

export function severityBadge(sev) {
  return h("span", { class: `sev sev-${sev}` }, t(sev));
}

// A project's status (active, archived, ...) as a small labelled chip.
export function statusChip(status) {
  return h("span", { class: `status status-${status}`, dataset: { status } }, t(`status_${status}`));
}

export function toast(text, kind = "info") {
  const el = h("div", { class: `toast toast-${kind}`, role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}
