# ruff: noqa: RUF001  (Chinese punctuation and en dashes are the texts' own)
"""The report as one self-contained HTML page (English or Chinese) or as one CSV file.

HTML: inline CSS only, no script, a print stylesheet (A4, no background, tables kept
together), so "print to PDF" in any browser gives the document. Every value shown passes
through `html.escape`: device ids, rule names and whatever a provider returns come from
devices or operators and are untrusted.

CSV: one file of `section,subject,measure,value` rows (long format: every section fits the
same four columns and a spreadsheet pivots it). Text cells that a spreadsheet would run as
a formula (starting with `=`, `+`, `-`, `@`, tab or CR and not a number) get a leading `'`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Evidence report",
        "project": "Project",
        "range": "Range",
        "generated": "Generated",
        "kpis": "KPIs against targets",
        "kpi": "KPI",
        "value": "Value",
        "target": "Target",
        "status": "Status",
        "met": "met",
        "missed": "missed",
        "oee": "OEE (ISO 22400-2)",
        "availability": "5G communication service availability",
        "not_available": "Not available in this installation.",
        "failed": "Could not be computed; see the API log.",
        "alarms": "Alarms",
        "severity": "Severity",
        "rule": "Rule",
        "opened": "Opened",
        "acknowledged": "Acknowledged",
        "cleared": "Cleared",
        "mtta": "Mean time to acknowledge",
        "mttc": "Mean time to clear",
        "total": "Total",
        "no_alarms": "No alarm was opened in the range.",
        "completeness": "Data completeness (loss ledger)",
        "completeness_note": "Records expected from each device's counter (seq, VDA 5050 "
        "headerId, Sparkplug seq per edge node) against records received, over the whole "
        "minutes the range touches",
        "device": "Device",
        "counter": "Counter",
        "expected": "Expected",
        "received": "Received",
        "lost": "Lost",
        "repeats": "Repeats",
        "resets": "Resets",
        "complete": "Completeness",
        "no_records": "No record in the range.",
        "defect_rate": "Defect rate",
        "first_pass_yield": "First pass yield",
        "inspections": "Inspections",
        "utilisation": "AGV utilisation",
        "e_stops": "Emergency stops",
        "mean_battery_pct": "Mean battery",
        "latency_p95_ms": "5G latency p95",
        "latency_p99_ms": "5G latency p99",
        "mean_rsrp_dbm": "Mean RSRP",
        "mean_sinr_db": "Mean SINR",
        "mean_loss_pct": "Mean packet loss",
        "sev_critical": "critical",
        "sev_major": "major",
        "sev_minor": "minor",
        "sev_warning": "warning",
        "sev_info": "info",
    },
    "zh": {
        "title": "成效报告",
        "project": "项目",
        "range": "时间范围",
        "generated": "生成时间",
        "kpis": "关键指标与目标",
        "kpi": "指标",
        "value": "数值",
        "target": "目标",
        "status": "状态",
        "met": "达标",
        "missed": "未达标",
        "oee": "设备综合效率 OEE（ISO 22400-2）",
        "availability": "5G 通信服务可用性",
        "not_available": "本部署未提供此部分。",
        "failed": "无法计算，请查看 API 日志。",
        "alarms": "告警",
        "severity": "级别",
        "rule": "规则",
        "opened": "产生",
        "acknowledged": "已确认",
        "cleared": "已清除",
        "mtta": "平均确认时间",
        "mttc": "平均清除时间",
        "total": "合计",
        "no_alarms": "该时间范围内没有产生告警。",
        "completeness": "数据完整性（丢失台账）",
        "completeness_note": "按各设备的计数器（seq、VDA 5050 headerId、Sparkplug 边缘节点 seq）"
        "推算的应收记录数与实收记录数，统计范围为所涉及的完整分钟",
        "device": "设备",
        "counter": "计数器",
        "expected": "应收",
        "received": "实收",
        "lost": "丢失",
        "repeats": "重复",
        "resets": "重置",
        "complete": "完整率",
        "no_records": "该时间范围内没有记录。",
        "defect_rate": "不良率",
        "first_pass_yield": "一次合格率",
        "inspections": "检测数",
        "utilisation": "AGV 利用率",
        "e_stops": "急停次数",
        "mean_battery_pct": "平均电量",
        "latency_p95_ms": "5G 时延 p95",
        "latency_p99_ms": "5G 时延 p99",
        "mean_rsrp_dbm": "平均 RSRP",
        "mean_sinr_db": "平均 SINR",
        "mean_loss_pct": "平均丢包率",
        "sev_critical": "紧急",
        "sev_major": "重要",
        "sev_minor": "次要",
        "sev_warning": "警告",
        "sev_info": "提示",
    },
}
LANGS: Final = tuple(TEXTS)

_PERCENT: Final = {"defect_rate", "first_pass_yield", "utilisation"}
_UNITS: Final = {
    "mean_battery_pct": " %",
    "latency_p95_ms": " ms",
    "latency_p99_ms": " ms",
    "mean_rsrp_dbm": " dBm",
    "mean_sinr_db": " dB",
    "mean_loss_pct": " %",
}

CSS: Final = """
body{font:14px/1.45 system-ui,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
color:#1b1f23;margin:2rem auto;max-width:60rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:2px solid #1565c0;padding-bottom:.2rem}
.meta{color:#555}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #cfd8dc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eceff1}td.n{text-align:right;font-variant-numeric:tabular-nums}
.met{color:#2e7d32;font-weight:600}.missed{color:#c62828;font-weight:600}
.note{color:#555;font-size:.9rem}.na{color:#777;font-style:italic}
@media print{@page{size:A4;margin:15mm}body{margin:0;max-width:none;font-size:11px}
th{background:none}h2{break-after:avoid}table,tr{break-inside:avoid}}
"""


# The stylesheet's CSP source: the only inline content the report page (and the dashboard,
# which opens it as a blob page inheriting its policy) allows.
_DIGEST: Final = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
STYLE_SOURCE: Final = f"'sha256-{_DIGEST}'"
# Sent with the report page itself: nothing but its stylesheet may load or run.
PAGE_CSP: Final = (
    f"default-src 'none'; style-src {STYLE_SOURCE}; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _fmt_num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _fmt_kpi(name: str, v: Any) -> str:
    if v is None:
        return "–"
    if name in _PERCENT and isinstance(v, int | float):
        return f"{v * 100:.2f} %"
    return _fmt_num(v) + _UNITS.get(name, "")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _fmt_time(v: Any) -> str:
    return v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else _fmt_num(v)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) pairs of nested plain data; list items by index."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def html_report(report: dict[str, Any], lang: str, generated: datetime) -> str:
    tx = TEXTS[lang]
    e = html.escape
    out: list[str] = []
    p = report["project"]
    title = f"{tx['title']} · {p.get('name') or p['id']}"
    out.append(
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><title>{e(title)}</title><style>{CSS}</style></head><body>'
    )
    out.append(f"<h1>{e(title)}</h1>")
    meta = [f"{tx['project']}: {p['id']}"]
    meta += [str(p[k]) for k in ("enterprise", "city", "scenario") if p.get(k)]
    out.append(f'<p class="meta">{e(" · ".join(meta))}<br>')
    out.append(
        f"{e(tx['range'])}: {e(_fmt_time(report['start']))} – {e(_fmt_time(report['end']))}"
        f" · {e(tx['generated'])}: {e(_fmt_time(generated))}</p>"
    )

    out.append(f"<h2>{e(tx['kpis'])}</h2><table><tr><th>{e(tx['kpi'])}</th>")
    out.append(
        f"<th>{e(tx['value'])}</th><th>{e(tx['target'])}</th><th>{e(tx['status'])}</th></tr>"
    )
    for k in report["kpis"]:
        target = "–" if k["target"] is None else f"{'≤' if k['op'] == '<=' else '≥'} "
        if k["target"] is not None:
            target += _fmt_kpi(k["kpi"], k["target"])
        status = k["status"]
        out.append(
            f"<tr><td>{e(tx.get(k['kpi'], k['kpi']))}</td><td class=n>"
            f"{e(_fmt_kpi(k['kpi'], k['value']))}</td><td class=n>{e(target)}</td>"
            f"<td class={e(status or '')}>{e(tx[status]) if status else '–'}</td></tr>"
        )
    out.append("</table>")

    for name in ("oee", "availability"):
        sec = report.get(name, {"available": False})
        out.append(f'<h2>{e(tx[name])}</h2><section data-section="{e(name)}">')
        if not sec.get("available"):
            msg = tx["failed"] if sec.get("error") else tx["not_available"]
            out.append(f'<p class="na">{e(msg)}</p>')
        else:
            out.append("<table>")
            for path, leaf in _flatten(sec.get("data")):
                out.append(f"<tr><td>{e(path)}</td><td class=n>{e(_fmt_time(leaf))}</td></tr>")
            out.append("</table>")
        out.append("</section>")

    a = report["alarms"]
    out.append(f"<h2>{e(tx['alarms'])}</h2>")
    if not a["by_rule"]:
        out.append(f'<p class="na">{e(tx["no_alarms"])}</p>')
    else:
        head = (
            f"<tr><th>{e(tx['opened'])}</th><th>{e(tx['acknowledged'])}</th>"
            f"<th>{e(tx['cleared'])}</th><th>{e(tx['mtta'])}</th><th>{e(tx['mttc'])}</th></tr>"
        )

        def cells(r: dict[str, Any]) -> str:
            return (
                f"<td class=n>{r['opened']:,}</td><td class=n>{r['acknowledged']:,}</td>"
                f"<td class=n>{r['cleared']:,}</td><td class=n>{e(_fmt_duration(r['mtta_s']))}"
                f"</td><td class=n>{e(_fmt_duration(r['mttc_s']))}</td>"
            )

        out.append(f"<table><tr><th>{e(tx['severity'])}</th>{head[4:]}")

        def sev(name: str) -> str:
            return e(tx.get(f"sev_{name}", name))

        for r in a["by_severity"]:
            out.append(f"<tr><td>{sev(r['severity'])}</td>{cells(r)}</tr>")
        out.append(f"<tr><th>{e(tx['total'])}</th>{cells(a['total'])}</tr></table>")
        out.append(f"<table><tr><th>{e(tx['severity'])}</th><th>{e(tx['rule'])}</th>{head[4:]}")
        for r in a["by_rule"]:
            out.append(f"<tr><td>{sev(r['severity'])}</td><td>{e(r['rule'])}</td>{cells(r)}</tr>")
        out.append("</table>")

    c = report["completeness"]
    out.append(f"<h2>{e(tx['completeness'])}</h2>")
    out.append(
        f'<p class="note">{e(tx["completeness_note"])} ({e(_fmt_time(c["minutes_start"]))} – '
        f"{e(_fmt_time(c['minutes_end']))}).</p>"
    )
    if not c["devices"]:
        out.append(f'<p class="na">{e(tx["no_records"])}</p>')
    else:
        cols = ("expected", "received", "lost", "repeats", "resets")
        out.append(f"<table><tr><th>{e(tx['device'])}</th><th>{e(tx['counter'])}</th>")
        out.append("".join(f"<th>{e(tx[k])}</th>" for k in cols))
        out.append(f"<th>{e(tx['complete'])}</th></tr>")
        for d in [*c["devices"], {"device_id": tx["total"], "counter": "", **_totals(c)}]:
            share = d["completeness"]
            out.append(f"<tr><td>{e(d['device_id'])}</td><td>{e(d['counter'])}</td>")
            out.append("".join(f"<td class=n>{_fmt_num(d[k])}</td>" for k in cols))
            out.append(f"<td class=n>{'–' if share is None else f'{share * 100:.3f} %'}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "".join(out)


def _totals(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "expected": c["expected"],
        "received": c["received"],
        "lost": c["lost"],
        "repeats": sum(d["repeats"] for d in c["devices"]),
        "resets": sum(d["resets"] for d in c["devices"]),
        "completeness": c["completeness"],
    }


_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return _fmt_time(v)
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str) and v.startswith(_FORMULA):
        try:
            float(v)
        except ValueError:
            return "'" + v
    return v


def csv_rows(report: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    p = report["project"]
    for k in ("id", "name", "enterprise", "city", "scenario"):
        yield "report", "project", k, p.get(k)
    yield "report", "range", "start", report["start"]
    yield "report", "range", "end", report["end"]
    for k in report["kpis"]:
        yield "kpis", k["kpi"], "value", k["value"]
        if k["target"] is not None:
            yield "kpis", k["kpi"], "target_max" if k["op"] == "<=" else "target_min", k["target"]
            yield "kpis", k["kpi"], "status", k["status"]
    for name in ("oee", "availability"):
        sec = report.get(name, {"available": False})
        yield name, "", "available", bool(sec.get("available"))
        if sec.get("available"):
            for path, leaf in _flatten(sec.get("data")):
                yield name, "", path, leaf
    a = report["alarms"]
    fields = ("opened", "acknowledged", "cleared", "mtta_s", "mttc_s")
    for r in a["by_severity"]:
        for f in fields:
            yield "alarms_by_severity", r["severity"], f, r[f]
    for f in fields:
        yield "alarms_by_severity", "total", f, a["total"][f]
    for r in a["by_rule"]:
        for f in fields:
            yield "alarms_by_rule", f"{r['severity']}/{r['rule']}", f, r[f]
    c = report["completeness"]
    yield "completeness", "", "minutes_start", c["minutes_start"]
    yield "completeness", "", "minutes_end", c["minutes_end"]
    for f in ("expected", "received", "lost", "completeness"):
        yield "completeness", "", f, c[f]
    for d in c["devices"]:
        for f in ("counter", "expected", "received", "lost", "repeats", "resets",
                  "completeness", "first_ts", "last_ts"):  # fmt: skip
            yield "completeness", d["device_id"], f, d[f]


def csv_report(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(("section", "subject", "measure", "value"))
    for row in csv_rows(report):
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()
