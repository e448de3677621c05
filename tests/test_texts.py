# The expected Chinese texts are written with their full-width brackets, as shown to readers.
# ruff: noqa: RUF001
"""Server-side texts: every rule kind's message in English and Chinese with its unit, the
rounding and the threshold's side, rule names from the rule file, KPI names, the reader's
language from `lang` / Accept-Language, and the facts the rules engine stores for them.

Expected strings are written out by hand, not computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.core.contracts import Topic, decode
from services.protocols import texts
from services.rules.builtin import BUILTIN
from services.rules.config import RulesConfigError, parse_rules
from services.rules.engine import Engine, Transition
from tests.test_rules_scenarios import T0, TEST_RULES, insp, run_scenario, scenarios


def facts(rule_type: str, raise_at: float | None, direction: str = "above", **kw: Any) -> Any:
    return {"rule_type": rule_type, "raise": raise_at, "direction": direction, **kw}


# (facts, value, English, Chinese)
CASES: list[tuple[dict[str, Any], float | None, str, str]] = [
    (facts("defect_rate", 0.1), 0.11, "defect rate 11 % (≥ 10 %)", "不良率 11 %（≥ 10 %）"),
    (facts("defect_rate", 0.1), 0.1123, "defect rate 11.2 % (≥ 10 %)", "不良率 11.2 %（≥ 10 %）"),
    (
        facts("consecutive_fails", 5),
        6,
        "consecutive fails 6 (≥ 5)",
        "连续不合格件数 6（≥ 5）",
    ),
    (
        facts("confidence_drift", 0.08),
        0.12345,
        "confidence drift 0.123 (≥ 0.08)",
        "置信度偏移 0.123（≥ 0.08）",
    ),
    (
        facts("inference_p95", 200),
        312.04,
        "inference time P95 312 ms (≥ 200 ms)",
        "推理时延 P95 312 ms（≥ 200 ms）",
    ),
    (
        facts("station_silent", 120),
        185.4,
        "silent for 3 min 5 s (≥ 2 min)",
        "无数据时长 3 分钟 5 秒（≥ 2 分钟）",
    ),
    (
        facts("battery_low", 20, "below"),
        18.46,
        "battery 18.5 % (≤ 20 %)",
        "电量 18.5 %（≤ 20 %）",
    ),
    (
        facts("localization_low", 0.5, "below"),
        0.42,
        "localization score 0.42 (≤ 0.5)",
        "定位评分 0.42（≤ 0.5）",
    ),
    (
        facts("safety_stop", 1, detail="estop"),
        1,
        "AGV emergency stop or protective field violation (estop)",
        "AGV 急停或防护区域触发（estop）",
    ),
    (
        facts("agv_error", 1, detail="E-42"),
        1,
        "AGV reports an error (E-42)",
        "AGV 报告故障（E-42）",
    ),
    (facts("agv_error", 1), 1, "AGV reports an error", "AGV 报告故障"),
    (facts("stalled", 30), 45.2, "stalled for 45 s (≥ 30 s)", "停滞时长 45 秒（≥ 30 秒）"),
    (
        facts("connection_lost", 30),
        3725,
        "no status for 1 h 2 min (≥ 30 s)",
        "无状态上报时长 1 小时 2 分钟（≥ 30 秒）",
    ),
    (
        facts("rsrp_low", -110, "below"),
        -112.46,
        "RSRP -112.5 dBm (≤ -110 dBm)",
        "RSRP -112.5 dBm（≤ -110 dBm）",
    ),
    (facts("sinr_low", 0, "below"), -2.0, "SINR -2 dB (≤ 0 dB)", "SINR -2 dB（≤ 0 dB）"),
    (facts("loss_high", 1), 2.5, "packet loss 2.5 % (≥ 1 %)", "丢包率 2.5 %（≥ 1 %）"),
    (
        facts("latency_p99", 1.0),
        1.5,
        "latency P99 / slice budget 150 % (≥ 100 %)",
        "时延 P99 / 切片预算 150 %（≥ 100 %）",
    ),
    (facts("cell_changes", 5), 7, "cell changes 7 (≥ 5)", "小区切换次数 7（≥ 5）"),
    (
        facts("threshold_above", 80, metric="spindle_temp", unit=" °C"),
        82.5,
        "spindle_temp 82.5 °C (≥ 80 °C)",
        "spindle_temp 82.5 °C（≥ 80 °C）",
    ),
    (
        facts("threshold_below", 5, "below", metric="coolant_l", unit=""),
        3.5,
        "coolant_l 3.5 (≤ 5)",
        "coolant_l 3.5（≤ 5）",
    ),
    (facts("battery_low", 20, "below"), None, "battery – (≤ 20 %)", "电量 –（≤ 20 %）"),
]


@pytest.mark.parametrize(("fact", "value", "en", "zh"), CASES)
def test_each_rule_kind_in_both_languages(
    fact: dict[str, Any], value: float | None, en: str, zh: str
) -> None:
    assert texts.alarm_message(fact, "en", "stored", value) == en
    assert texts.alarm_message(fact, "zh", "stored", value) == zh


def test_every_builtin_rule_type_is_in_the_catalogue_and_the_cases() -> None:
    assert set(texts.RULES) == set(BUILTIN)
    assert {c[0]["rule_type"] for c in CASES} == set(BUILTIN)


def test_the_facts_own_value_wins_over_the_last_value() -> None:
    """A cleared alarm's row keeps the facts of its opening (value 0.2) while `last_value`
    is the all-clear value: the message says what was wrong."""
    fact = facts("defect_rate", 0.1, value=0.2)
    assert texts.alarm_message(fact, "en", "stored", 0.04) == "defect rate 20 % (≥ 10 %)"
    assert texts.value_text(fact, "zh", 0.04) == "20 %"


def test_old_rows_without_facts_keep_their_stored_text() -> None:
    stored = "defect rate high: defect rate 0.11 (>= 0.1)"
    for lang in ("en", "zh"):
        assert texts.alarm_message(None, lang, stored, 0.11) == stored  # type: ignore[arg-type]
    # Evidence of an old row, or facts naming no rule type this version knows.
    assert texts.facts_of({"defect_rate": 0.11, "thresholds": {"raise": 0.1}}) is None
    assert texts.facts_of({"text": {"rule_type": "flux_capacitor"}}) is None
    assert texts.facts_of("not a mapping") is None


def test_durations() -> None:
    cases = [(0, "0 s", "0 秒"), (59.4, "59 s", "59 秒"), (59.6, "1 min", "1 分钟")]
    cases += [(120, "2 min", "2 分钟"), (3600, "1 h", "1 小时")]
    cases += [(7290, "2 h 2 min", "2 小时 2 分钟")]
    for seconds, en, zh in cases:
        assert (texts.duration(seconds, "en"), texts.duration(seconds, "zh")) == (en, zh)


def test_rule_names() -> None:
    fact = facts("battery_low", 20, "below")
    assert texts.rule_name("battery_low", fact, "en") == "AGV battery low"
    assert texts.rule_name("battery_low", fact, "zh") == "AGV 电量低"
    own = {**fact, "name": {"en": "Tugger battery", "zh": "牵引车电量"}}
    assert texts.rule_name("tugger_battery", own, "zh") == "牵引车电量"
    assert texts.rule_name("tugger_battery", own, "en") == "Tugger battery"
    only_en = {**fact, "name": {"en": "Tugger battery"}}
    assert texts.rule_name("tugger_battery", only_en, "zh") == "Tugger battery"
    # Old rows: a built-in rule's id still finds its name; any other id is shown as is.
    assert texts.rule_name("rsrp_low", None, "zh") == "5G 信号弱（RSRP）"
    assert texts.rule_name("coolant_low", None, "zh") == "coolant_low"


def test_kpi_names_as_the_programme_writes_them() -> None:
    zh = {
        "inspection.defect_rate": "产品不良率",
        "inspection.first_pass_yield": "一次合格率 (FPY)",
        "agv.utilisation": "AGV 利用率",
        "link.latency_ms.p95": "5G 网络时延 P95",
        "service_availability": "通信服务可用性",
        "oee": "设备综合效率 (OEE)",
    }
    for key, name in zh.items():
        assert texts.kpi_label(key, "zh") == name
    assert texts.kpi_label("inspection.defect_rate", "en") == "Product defect rate"
    assert texts.kpi_labels(["agv.utilisation", "agv.samples"], "zh") == {
        "agv.utilisation": "AGV 利用率"
    }


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh-CN", "zh"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh-Hans-CN", "zh"),
        ("ZH-tw", "zh"),
        ("fr-FR", "en"),
        ("fr-FR, zh;q=0.5", "zh"),
        ("zh;q=0, en;q=0.1", "en"),
        ("zh;q=zero", "en"),
        ("", "en"),
        ("*", "en"),
        ("en;q=0.5, zh;q=0.5", "en"),
    ],
)
def test_accept_language(header: str, lang: str) -> None:
    assert texts.negotiate(header) == lang


# --------------------------------------------------------------------------- the engine


def test_the_engine_stores_facts_each_rule_kind_renders_from() -> None:
    """Every scripted scenario's transitions carry facts naming their rule type, value and
    threshold; rendered in Chinese they use the catalogue's names, and the stored English
    message (what clients asking for no language read) is unchanged."""
    seen: set[str] = set()
    for sc in scenarios(T0):
        engine = Engine(parse_rules(TEST_RULES, "test.yaml"))
        trs = run_scenario(engine, sc, f"{sc.rule}-1")
        opened = [tr for tr in trs if tr.transition == "opened"]
        assert opened, sc.rule
        for tr in opened:
            fact = texts.facts_of(tr.evidence)
            assert fact is not None, sc.rule
            assert fact["rule_type"] == sc.rule
            assert fact["value"] == tr.value
            assert fact["direction"] == BUILTIN[sc.rule].direction
            zh = texts.alarm_message(fact, "zh", tr.message)
            word = texts.RULES[sc.rule]
            assert (word.name if word.flag else word.value)["zh"] in zh, zh
            assert tr.message.startswith(BUILTIN[sc.rule].summary), tr.message
        seen.add(sc.rule)
    assert len(seen) >= 14


RULES_WITH_NAME = """
version: 1
defaults:
  vision:
    defect_rate: {window: 10, min_samples: 10, raise: 0.1, clear: 0.05,
                  baseline_samples: 100000,
                  name: {en: Scratch rate at the paint line, zh: 喷涂线划伤率}}
"""


def _open_defect_rate(rules: str) -> Transition:
    engine = Engine(parse_rules(rules, "rules.yaml"))
    topic = Topic("p1", "vision", "cam-1", "inspection")
    out: list[Transition] = []
    for i in range(10):  # 8 passes, then 2 fails: 2 of 10 = 20 % at the 10th part
        rec = insp(T0 + i, i + 1, result="fail" if i >= 8 else "pass")
        out += engine.process(topic, decode("inspection", orjson.dumps(rec)), T0 + i)
    (tr,) = out
    return tr


def test_a_defect_rate_alarm_from_records_in_both_languages() -> None:
    tr = _open_defect_rate(RULES_WITH_NAME)
    fact = texts.facts_of(tr.evidence)
    assert texts.alarm_message(fact, "zh", tr.message) == "不良率 20 %（≥ 10 %）"
    assert texts.alarm_message(fact, "en", tr.message) == "defect rate 20 % (≥ 10 %)"
    assert texts.rule_name(tr.rule, fact, "zh") == "喷涂线划伤率"
    assert texts.rule_name(tr.rule, fact, "en") == "Scratch rate at the paint line"
    # What the engine stores as `message` stays as it was.
    assert tr.message == "defect rate high: defect rate 0.2 (>= 0.1)"


# --------------------------------------------------------------------------- rule files


def _error(rules: str) -> str:
    with pytest.raises(RulesConfigError) as err:
        parse_rules(rules, "rules.yaml")
    return str(err.value)


def test_rule_file_name_errors_point_into_the_file() -> None:
    base = "version: 1\ndefaults:\n  agv:\n    battery_low:\n      name: "
    assert _error(base + "{fr: Batterie}\n").startswith(
        "rules.yaml:5:14: defaults.agv.battery_low.name.fr: unknown language; allowed: en, zh"
    )
    assert _error(base + "Battery\n").startswith(
        "rules.yaml:5:13: defaults.agv.battery_low.name: expected a mapping of language"
    )
    assert _error(base + "{}\n").startswith(
        "rules.yaml:5:13: defaults.agv.battery_low.name: name at least one of en, zh"
    )
    assert "at most 120 printable characters" in _error(base + "{zh: " + "电" * 121 + "}\n")
    assert "expected text" in _error(base + "{zh: 12}\n")


def test_rule_file_name_is_optional_and_takes_one_language() -> None:
    ruleset = parse_rules(
        "version: 1\ndefaults:\n  agv:\n    battery_low: {name: {zh: 电量不足}}\n", "r.yaml"
    )
    (rule,) = [r for r in ruleset.rules_for("p1", "agv", "a1") if r.name == "battery_low"]
    assert rule.cfg.names == {"zh": "电量不足"}
    assert rule.text_facts(rule.new_state())["name"] == {"zh": "电量不足"}


def test_the_effective_view_names_where_the_name_was_written() -> None:
    ruleset = parse_rules(
        "version: 1\ndefaults:\n  agv:\n    battery_low: {name: {zh: 电量不足, en: Low battery}}\n",
        "r.yaml",
    )
    (rule,) = [r for r in ruleset.effective("p1", ["agv"], "a1") if r.name == "battery_low"]
    (name,) = [v for v in rule.settings if v.key == "name"]
    assert (name.value, name.layer, name.source) == (
        {"zh": "电量不足", "en": "Low battery"},
        "defaults.agv",
        "r.yaml:4:25",
    )
