"""The catalogue of server-side texts in English and Chinese: rule names, alarm messages
with their units, and KPI names as the programme's documents write them.

Why one place: an alarm is read in the API, the live stream, the dashboard and the
notifications, and each must say the same thing in the reader's language. The rules engine
therefore stores the facts of a message (rule type, value, threshold, direction, unit) in
the alarm's evidence under `text` (see `services/rules/builtin.py`, `Rule.text_facts`), and
every reader renders them here at read time. Rows written before the facts existed keep
the English text the engine stored, which every renderer falls back to.

Numbers are shown the way a plant engineer writes them: a rate as a percentage
("11 %", not "0.11"), signal levels in dBm / dB, times in ms, durations in s / min / h,
with the threshold after "≥" or "≤". Chinese puts the threshold in full-width brackets
(`ZH_OPEN`, `ZH_CLOSE`): "不良率 11 %" then "≥ 10 %" in them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from services.protocols.notify.message import LANGUAGES, Language

DEFAULT_LANGUAGE: Final[Language] = "en"
ZH_OPEN: Final = "\uff08"  # the full-width brackets of Chinese text
ZH_CLOSE: Final = "\uff09"
NO_VALUE: Final = "\u2013"  # an en dash, as the dashboard shows a missing value

# How a rule's value is shown. `ratio` is a fraction shown as a percentage (0.11 -> 11 %),
# `percent` is already one (battery 18 -> 18 %); `duration` is seconds.
UNITS: Final = ("ratio", "percent", "ms", "dBm", "dB", "duration", "count", "score")


@dataclass(frozen=True, slots=True)
class RuleText:
    """A built-in rule type's name, the name of the value it judges, and that value's unit.
    `flag` rules (a state, not a measure) are named without value or threshold."""

    name: dict[Language, str]
    value: dict[Language, str]
    unit: str = ""
    flag: bool = False


RULES: Final[dict[str, RuleText]] = {
    "defect_rate": RuleText(
        {"en": "Defect rate high", "zh": "不良率过高"},
        {"en": "defect rate", "zh": "不良率"},
        "ratio",
    ),
    "consecutive_fails": RuleText(
        {"en": "Consecutive fails at station", "zh": "工位连续不合格"},
        {"en": "consecutive fails", "zh": "连续不合格件数"},
        "count",
    ),
    "confidence_drift": RuleText(
        {"en": "Mean confidence drifted", "zh": "平均置信度漂移"},
        {"en": "confidence drift", "zh": "置信度偏移"},
        "score",
    ),
    "inference_p95": RuleText(
        {"en": "Inference time over budget", "zh": "推理时延超出预算"},
        {"en": "inference time P95", "zh": "推理时延 P95"},
        "ms",
    ),
    "station_silent": RuleText(
        {"en": "Station silent while its line runs", "zh": "产线运行中工位无数据"},
        {"en": "silent for", "zh": "无数据时长"},
        "duration",
    ),
    "battery_low": RuleText(
        {"en": "AGV battery low", "zh": "AGV 电量低"},
        {"en": "battery", "zh": "电量"},
        "percent",
    ),
    "localization_low": RuleText(
        {"en": "AGV localization poor", "zh": "AGV 定位质量差"},
        {"en": "localization score", "zh": "定位评分"},
        "score",
    ),
    "safety_stop": RuleText(
        {"en": "AGV emergency stop or protective field violation", "zh": "AGV 急停或防护区域触发"},
        {"en": "safety stop", "zh": "安全停车"},
        flag=True,
    ),
    "agv_error": RuleText(
        {"en": "AGV reports an error", "zh": "AGV 报告故障"},
        {"en": "error", "zh": "故障"},
        flag=True,
    ),
    "stalled": RuleText(
        {"en": "AGV stalled", "zh": "AGV 停滞"},
        {"en": "stalled for", "zh": "停滞时长"},
        "duration",
    ),
    "connection_lost": RuleText(
        {"en": "AGV connection lost or no status", "zh": "AGV 连接中断或无状态上报"},
        {"en": "no status for", "zh": "无状态上报时长"},
        "duration",
    ),
    "rsrp_low": RuleText(
        {"en": "5G signal weak (RSRP)", "zh": "5G 信号弱（RSRP）"},  # noqa: RUF001
        {"en": "RSRP", "zh": "RSRP"},
        "dBm",
    ),
    "sinr_low": RuleText(
        {"en": "5G signal noisy (SINR)", "zh": "5G 信号干扰大（SINR）"},  # noqa: RUF001
        {"en": "SINR", "zh": "SINR"},
        "dB",
    ),
    "loss_high": RuleText(
        {"en": "5G packet loss high", "zh": "5G 丢包率高"},
        {"en": "packet loss", "zh": "丢包率"},
        "percent",
    ),
    "latency_p99": RuleText(
        {"en": "5G latency over the slice budget", "zh": "5G 时延超出切片预算"},
        {"en": "latency P99 / slice budget", "zh": "时延 P99 / 切片预算"},
        "ratio",
    ),
    "cell_changes": RuleText(
        {"en": "Frequent cell changes", "zh": "小区切换频繁"},
        {"en": "cell changes", "zh": "小区切换次数"},
        "count",
    ),
    # The value's name of a threshold rule is its metric, its unit what the rule file says.
    "threshold_above": RuleText(
        {"en": "Threshold exceeded", "zh": "超过阈值"}, {"en": "value", "zh": "数值"}
    ),
    "threshold_below": RuleText(
        {"en": "Below threshold", "zh": "低于阈值"}, {"en": "value", "zh": "数值"}
    ),
}

# KPI names as the programme's documents write them; keys are paths into the KPI summary
# (`GET /api/v1/projects/{id}/kpis`) or names of the plant views (OEE, availability).
KPIS: Final[dict[str, dict[Language, str]]] = {
    "inspection.inspections": {"en": "Inspections", "zh": "检测件数"},
    "inspection.failed": {"en": "Failed parts", "zh": "不合格件数"},
    "inspection.defect_rate": {"en": "Product defect rate", "zh": "产品不良率"},
    "inspection.first_pass_yield": {"en": "First pass yield (FPY)", "zh": "一次合格率 (FPY)"},
    "inspection.defects_per_unit": {"en": "Defects per unit", "zh": "单件缺陷数"},
    "inspection.mean_inference_ms": {"en": "Mean inference time", "zh": "平均推理时延"},
    "inspection.top_defects": {"en": "Top defect types", "zh": "主要缺陷类型"},
    "agv.agvs": {"en": "AGVs", "zh": "AGV 数量"},
    "agv.utilisation": {"en": "AGV utilisation", "zh": "AGV 利用率"},
    "agv.state_share": {"en": "AGV state share", "zh": "AGV 状态占比"},
    "agv.e_stops": {"en": "AGV emergency stops", "zh": "AGV 急停次数"},
    "agv.low_battery_share": {"en": "AGV low-battery share", "zh": "AGV 低电量占比"},
    "agv.low_battery_hours": {"en": "AGV low-battery hours", "zh": "AGV 低电量时长"},
    "agv.mean_battery_pct": {"en": "AGV mean battery", "zh": "AGV 平均电量"},
    "agv.mean_localization": {"en": "AGV mean localization score", "zh": "AGV 平均定位评分"},
    "link.modules": {"en": "5G modules", "zh": "5G 模组数量"},
    "link.latency_ms.mean": {"en": "5G network latency (mean)", "zh": "5G 网络时延 (平均)"},
    "link.latency_ms.p50": {"en": "5G network latency P50", "zh": "5G 网络时延 P50"},
    "link.latency_ms.p95": {"en": "5G network latency P95", "zh": "5G 网络时延 P95"},
    "link.latency_ms.p99": {"en": "5G network latency P99", "zh": "5G 网络时延 P99"},
    "link.mean_rsrp_dbm": {"en": "Mean RSRP", "zh": "平均 RSRP"},
    "link.mean_sinr_db": {"en": "Mean SINR", "zh": "平均 SINR"},
    "link.rsrp_bands": {"en": "RSRP quality bands", "zh": "RSRP 质量分布"},
    "link.sinr_bands": {"en": "SINR quality bands", "zh": "SINR 质量分布"},
    "link.mean_loss_pct": {"en": "5G packet loss", "zh": "5G 丢包率"},
    "alarms.opened_by_severity": {"en": "Alarms opened", "zh": "新增告警"},
    "alarms.active_by_severity": {"en": "Active alarms", "zh": "未关闭告警"},
    "service_availability": {
        "en": "Communication service availability",
        "zh": "通信服务可用性",
    },
    "oee": {"en": "Overall equipment effectiveness (OEE)", "zh": "设备综合效率 (OEE)"},
    "oee.availability": {"en": "Availability", "zh": "可用率"},
    "oee.performance": {"en": "Performance", "zh": "性能率"},
    "oee.quality": {"en": "Quality", "zh": "质量率"},
}

_REL: Final = {"above": "≥", "below": "≤"}


# --------------------------------------------------------------------------- language


def language_of(tag: str | None) -> Language | None:
    """A language tag as one of ours: zh, zh-CN, zh-Hans-CN ... -> zh; en, en-GB -> en."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else None  # type: ignore[return-value]


def negotiate(accept_language: str | None) -> Language:
    """The reader's language from an Accept-Language header (RFC 9110 §12.5.4): the
    supported language with the highest weight, English when none is supported."""
    best: tuple[float, int, Language] | None = None
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(raw)
                except ValueError:
                    weight = 0.0
        lang = language_of(tag)
        if lang is None or not weight > 0:
            continue
        if best is None or (weight, -i) > (best[0], best[1]):
            best = (weight, -i, lang)
    return best[2] if best is not None else DEFAULT_LANGUAGE


# --------------------------------------------------------------------------- numbers


def _trim(x: float, decimals: int) -> str:
    """`x` rounded to `decimals` places without trailing zeros: 11.0 -> "11", 0.5 -> "0.5"."""
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def duration(seconds: float, lang: Language) -> str:
    """45 s, 2 min 5 s, 1 h 2 min (45 秒, 2 分钟 5 秒, 1 小时 2 分钟): to the second below
    an hour, to the minute above."""
    s = round(seconds)
    zh = lang == "zh"
    if s < 60:
        return f"{s} 秒" if zh else f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        parts = [f"{m} 分钟" if zh else f"{m} min"]
        if rest:
            parts.append(f"{rest} 秒" if zh else f"{rest} s")
        return " ".join(parts)
    h, rest = divmod(round(s / 60), 60)
    parts = [f"{h} 小时" if zh else f"{h} h"]
    if rest:
        parts.append(f"{rest} 分钟" if zh else f"{rest} min")
    return " ".join(parts)


def quantity(value: float, unit: str, lang: Language) -> str:
    """A value in its unit: a named unit of `UNITS`, or a rule file's own (e.g. °C)."""
    if unit == "ratio":
        return f"{_trim(value * 100, 1)} %"
    if unit == "percent":
        return f"{_trim(value, 1)} %"
    if unit in ("ms", "dBm", "dB"):
        return f"{_trim(value, 1)} {unit}"
    if unit == "duration":
        return duration(value, lang)
    if unit == "count":
        return _trim(value, 0)
    if unit == "score":
        return _trim(value, 3)
    shown, own = _trim(value, 3), unit.strip()  # rule files write " °C" as well as "°C"
    return f"{shown} {own}" if own else shown


# --------------------------------------------------------------------------- alarms


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def facts_of(evidence: Any) -> Mapping[str, Any] | None:
    """The message facts an alarm's evidence carries, if they name a known rule type."""
    if not isinstance(evidence, Mapping):
        return None
    facts = evidence.get("text")
    if not isinstance(facts, Mapping) or facts.get("rule_type") not in RULES:
        return None
    return facts


def _own_name(facts: Mapping[str, Any] | None, lang: Language) -> str | None:
    names = facts.get("name") if facts is not None else None
    if not isinstance(names, Mapping):
        return None
    for choice in (lang, DEFAULT_LANGUAGE, *LANGUAGES):
        name = names.get(choice)
        if isinstance(name, str) and name:
            return name
    return None


def rule_name(rule: str, facts: Mapping[str, Any] | None, lang: Language) -> str:
    """A rule's name in `lang`: the rule file's own `name` if it gave one, else the
    built-in type's, else (an old row of a renamed rule) the rule's id."""
    own = _own_name(facts, lang)
    if own is not None:
        return own
    rule_type = facts.get("rule_type") if facts is not None else rule
    text = RULES.get(str(rule_type))
    return text.name[lang] if text is not None else rule


def _value(facts: Mapping[str, Any], value: float | None) -> float | None:
    """The value the message speaks of: the facts' own (the value when the message was
    made; a cleared alarm keeps it), else the one given (the alarm's last value)."""
    return _number(facts["value"]) if "value" in facts else _number(value)


def alarm_message(
    facts: Mapping[str, Any] | None, lang: Language, fallback: str, value: float | None = None
) -> str:
    """The alarm message in `lang` from its facts; `fallback` (the stored text) when the
    row has no facts."""
    if facts is None:
        return fallback
    text = RULES[str(facts["rule_type"])]
    if text.flag:
        detail = facts.get("detail")
        name = text.name[lang]
        if isinstance(detail, str) and detail:
            return f"{name}{ZH_OPEN}{detail}{ZH_CLOSE}" if lang == "zh" else f"{name} ({detail})"
        return name
    metric = facts.get("metric")
    label = metric if isinstance(metric, str) and metric else text.value[lang]
    unit = facts.get("unit")
    unit = unit if isinstance(unit, str) else text.unit
    threshold = _number(facts.get("raise"))
    rel = _REL.get(str(facts.get("direction")))
    number = _value(facts, value)
    shown = NO_VALUE if number is None else quantity(number, unit, lang)
    if threshold is None or rel is None:
        return f"{label} {shown}"
    limit = f"{rel} {quantity(threshold, unit, lang)}"
    if lang == "zh":
        return f"{label} {shown}{ZH_OPEN}{limit}{ZH_CLOSE}"
    return f"{label} {shown} ({limit})"


def value_text(
    facts: Mapping[str, Any] | None, lang: Language, value: float | None = None
) -> str | None:
    """Just the value in its unit (notifications show it in a field of its own)."""
    if facts is None or (number := _value(facts, value)) is None:
        return None
    text = RULES[str(facts["rule_type"])]
    unit = facts.get("unit")
    return quantity(number, unit if isinstance(unit, str) else text.unit, lang)


# --------------------------------------------------------------------------- KPIs


def kpi_label(key: str, lang: Language) -> str:
    """A KPI's name in `lang`; the key itself for one the catalogue does not know."""
    names = KPIS.get(key)
    return names[lang] if names is not None else key


def kpi_labels(keys: list[str] | tuple[str, ...], lang: Language) -> dict[str, str]:
    """The names of those of `keys` the catalogue knows (counts of samples have none)."""
    return {key: KPIS[key][lang] for key in keys if key in KPIS}
