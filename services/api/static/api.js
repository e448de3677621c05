// The dashboard reads the public API with the operator's own key; nothing is privileged.
import { currentLang } from "./i18n.js";

const KEY = "f5g.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return localStorage.getItem(KEY);
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

// Alarm messages, rule and KPI names come from the server in the page's language.
function headers() {
  return {
    Authorization: `Bearer ${getKey()}`,
    Accept: "application/json",
    "Accept-Language": currentLang() === "zh" ? "zh-CN" : "en",
  };
}

export async function api(path, { method = "GET", body, params } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(url, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = data?.error || {};
    throw new ApiError(res.status, err.code || "http", err.message || res.statusText);
  }
  return data;
}

// Server-sent events read with fetch, so the key goes in a header, not the URL.
export function liveStream(params, { onEvent, onState }) {
  let stopped = false;
  let controller = null;
  let delay = 500;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const url = new URL("/api/v1/live", location.origin);
        for (const [k, v] of Object.entries(params || {})) if (v) url.searchParams.set(k, v);
        const res = await fetch(url, { headers: headers(), signal: controller.signal });
        if (!res.ok) throw new ApiError(res.status, "live", res.statusText);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        delay = 500;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let event = "message";
            let data = "";
            for (const line of frame.split("\n")) {
              if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            const parsed = data ? JSON.parse(data) : {};
            if (event === "hello" || event === "status") onState(Boolean(parsed.live));
            onEvent(event, parsed);
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
  run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
