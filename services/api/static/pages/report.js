// Evidence report buttons of the project page: the report of the chosen range as a page
// (opened in a new tab, printable to PDF) and as CSV (downloaded). Both are fetched with
// the operator's key in a header, like every API call, then handed to the browser as blobs.
import { getKey } from "../api.js";
import { currentLang, t } from "../i18n.js";
import { h, toast } from "../ui.js";

async function fetchReport(pid, range, format) {
  const url = new URL(`/api/v1/projects/${encodeURIComponent(pid)}/report`, location.origin);
  url.searchParams.set("start", range.start);
  url.searchParams.set("end", range.end);
  url.searchParams.set("format", format);
  url.searchParams.set("lang", currentLang());
  const res = await fetch(url, { headers: { Authorization: `Bearer ${getKey()}` } });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    throw new Error(data?.error?.message || res.statusText);
  }
  return res.blob();
}

function stamp(iso) {
  return iso.slice(0, 16).replace(/[-:]/g, "");
}

export function reportButtons(pid, rangeOf) {
  async function openHtml() {
    // Opened before the request so the browser treats it as the click's own window.
    const win = window.open("", "_blank");
    try {
      const blob = await fetchReport(pid, rangeOf(), "html");
      const href = URL.createObjectURL(blob);
      if (win) win.location.href = href;
      else location.assign(href);
      setTimeout(() => URL.revokeObjectURL(href), 60000);
    } catch (e) {
      if (win) win.close();
      toast(`${t("report_failed")}: ${e.message}`, "bad");
    }
  }
  async function downloadCsv() {
    try {
      const r = rangeOf();
      const href = URL.createObjectURL(await fetchReport(pid, r, "csv"));
      const a = h("a", { href, download: `${pid}-report-${stamp(r.start)}-${stamp(r.end)}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
    } catch (e) {
      toast(`${t("report_failed")}: ${e.message}`, "bad");
    }
  }
  return h("span", { class: "report-buttons" },
    h("button", { type: "button", class: "report-open", title: t("report_hint"), onclick: openHtml }, t("report")),
    " ",
    h("button", { type: "button", class: "report-csv ghost", title: t("report_hint"), onclick: downloadCsv }, t("report_csv")));
}
