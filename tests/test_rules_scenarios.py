"""Scripted scenarios for every built-in rule, shared by the engine and end-to-end tests.

Each scenario is a device's records (one second apart, device time) and the alarm
transitions they must cause, updates left out: open exactly once, escalate, clear, and
nothing more while values hover around the raise and the clear thresholds afterwards.
Timed rules (a silent station, an AGV without status) are scripted in the tests that
drive a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Test rule file: the defaults with windows and durations shortened so scenarios stay small.
TEST_RULES = """
version: 1
alarms:
  update_interval: 3s
defaults:
  vision:
    defect_rate: {window: 20, min_samples: 10, raise: 0.3, clear: 0.15,
                  escalate: {at: 0.6}, baseline_samples: 100000}
    consecutive_fails: {}
    confidence_drift: {window: 20, min_samples: 10, reference: 0.95}
    inference_p95: {window: 20, min_samples: 10}
    station_silent: {raise: 2, line_active_within: 5s}
  agv:
    battery_low: {}
    safety_stop: {}
    localization_low: {}
    stalled: {raise: 10, escalate: {at: 20}}
    agv_error: {}
    connection_lost: {raise: 2, escalate: null}
  cpe:
    rsrp_low: {}
    sinr_low: {}
    latency_p99: {window: 20, min_samples: 10, quantile: 0.9}
    loss_high: {}
    cell_changes: {window: 60s, raise: 3, clear: 1, escalate: {at: 6}}
"""


@dataclass(frozen=True)
class Scenario:
    rule: str
    kind: str
    stream: str
    records: list[dict[str, Any]]
    expect: list[str]  # "opened:major", "escalated:critical", "cleared"
    updates: bool = True  # whether repeats must produce at least one "updated"


def insp(t: float, i: int, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": int(t * 1000),
        "seq": i,
        "station": "st",
        "part_id": f"P-{i}",
        "result": "pass",
        "defects": [],
        "confidence": 0.95,
        "inference_ms": 25.0,
    }
    rec.update(kw)
    if rec["result"] == "fail" and not rec["defects"]:
        rec["defects"] = [{"type": "scratch", "confidence": 0.9}]
    return rec


def agv(t: float, i: int, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": int(t * 1000),
        "seq": i,
        "x": float(i),
        "y": 0.0,
        "heading": 0.0,
        "speed": 1.0,
        "battery": 80.0,
        "state": "moving",
        "localization": 0.95,
    }
    rec.update(kw)
    return rec


def link(t: float, i: int, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": int(t * 1000),
        "seq": i,
        "rsrp": -90.0,
        "sinr": 15.0,
        "latency_ms": 10.0,
        "loss_pct": 0.0,
        "cell_id": "cell-1",
        "slice": "URLLC",
    }
    rec.update(kw)
    return rec


_BUILD = {"inspection": insp, "agv": agv, "link": link}


def _script(stream: str, t0: float, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_BUILD[stream](t0 + i, i + 1, **kw) for i, kw in enumerate(steps)]


def scenarios(t0: float) -> list[Scenario]:
    """All scripted scenarios, device time starting at `t0` (epoch seconds)."""
    out: list[Scenario] = []

    def field(rule: str, kind: str, stream: str, name: str, values: list[float], expect: list[str]):  # type: ignore[no-untyped-def]
        out.append(
            Scenario(rule, kind, stream, _script(stream, t0, [{name: v} for v in values]), expect)
        )

    # battery: open at 19, hover 19/21 (no clear, clear is 30), escalate at 9, clear at 31,
    # hover 29/21 (no reopen, raise is 20).
    field(
        "battery_low",
        "agv",
        "agv",
        "battery",
        [50, 50, 19, 19, 21, 19, 21, 19, 9, 9, 15, 25, 29, 31, 29, 21, 29, 25, 31],
        ["opened:warning", "escalated:critical", "cleared"],
    )
    # localization: a 3 s dip is shorter than `for: 5s`; then 7 s low opens it.
    field(
        "localization_low",
        "agv",
        "agv",
        "localization",
        [
            0.9,
            0.4,
            0.4,
            0.4,
            0.9,
            0.4,
            0.4,
            0.4,
            0.4,
            0.4,
            0.4,
            0.4,
            0.6,
            0.4,
            0.6,
            0.1,
            0.8,
            0.6,
            0.8,
            0.6,
        ],
        ["opened:major", "escalated:critical", "cleared"],
    )
    field(
        "rsrp_low",
        "cpe",
        "link",
        "rsrp",
        [-90, -115, -115, -115, -90, *[-115] * 12, -108, -112, -108, -125, -100, -108, -100],
        ["opened:warning", "escalated:major", "cleared"],
    )
    field(
        "sinr_low",
        "cpe",
        "link",
        "sinr",
        [10, -2, -2, -2, 10, *[-2] * 12, 1, -1, 1, -7, 5, 1, 5],
        ["opened:warning", "escalated:major", "cleared"],
    )
    field(
        "loss_high",
        "cpe",
        "link",
        "loss_pct",
        [0, 2, 2, 2, 0, *[2] * 12, 0.8, 1.2, 0.8, 6, 0.2, 0.8, 0.2],
        ["opened:warning", "escalated:major", "cleared"],
    )

    out.append(
        Scenario(
            "safety_stop",
            "agv",
            "agv",
            _script(
                "agv",
                t0,
                [
                    {},
                    *[{"state": "estop", "speed": 0.0}] * 7,
                    {},
                    *[{"state": "error", "error_code": "FIELD_VIOLATION-3"}] * 2,
                    {},
                    {},
                ],
            ),
            ["opened:critical", "cleared", "opened:critical", "cleared"],
            updates=True,
        )
    )
    out.append(
        Scenario(
            "agv_error",
            "agv",
            "agv",
            _script("agv", t0, [{}, *[{"state": "error", "error_code": "E-DRIVE-12"}] * 7, {}, {}]),
            ["opened:major", "cleared"],
        )
    )
    stuck = [{"x": 5.0, "state": "moving"}] * 24
    out.append(
        Scenario(
            "stalled",
            "agv",
            "agv",
            _script(
                "agv",
                t0,
                [
                    {"x": 0.0},
                    {"x": 2.0},
                    {"x": 4.0},
                    *stuck,
                    {"x": 9.0},
                    {"x": 9.1},
                    {"x": 12.0},
                    {"state": "idle", "x": 12.0},
                    {"state": "idle", "x": 12.0},
                ],
            ),
            ["opened:major", "escalated:critical", "cleared"],
        )
    )

    out.append(
        Scenario(
            "consecutive_fails",
            "vision",
            "inspection",
            _script(
                "inspection",
                t0,
                [
                    {},
                    *[{"result": "fail"}] * 4,
                    {},
                    *[{"result": "fail"}] * 12,
                    {},
                    *[{"result": "fail"}] * 4,
                    {},
                ],
            ),
            ["opened:major", "escalated:critical", "cleared"],
        )
    )
    # defect rate over 20 parts: 6 fails open (0.3), 12 escalate (0.6), 17 passes clear;
    # then 1 fail in 4 (0.25: between clear 0.15 and raise 0.3) must not reopen.
    hover = [{"result": "fail"}, {}, {}, {}] * 6
    out.append(
        Scenario(
            "defect_rate",
            "vision",
            "inspection",
            _script("inspection", t0, [*[{}] * 20, *[{"result": "fail"}] * 12, *[{}] * 17, *hover]),
            ["opened:major", "escalated:critical", "cleared"],
        )
    )
    out.append(
        Scenario(
            "confidence_drift",
            "vision",
            "inspection",
            _script(
                "inspection",
                t0,
                [
                    *[{}] * 20,
                    *[{"confidence": 0.8}] * 20,
                    *[{"confidence": 0.6}] * 6,
                    *[{}] * 22,
                    *[{"confidence": 0.9}] * 10,
                ],
            ),
            ["opened:warning", "escalated:major", "cleared"],
        )
    )
    out.append(
        Scenario(
            "inference_p95",
            "vision",
            "inspection",
            _script(
                "inspection",
                t0,
                [
                    *[{}] * 20,
                    *[{"inference_ms": 60.0}] * 4,
                    *[{"inference_ms": 120.0}] * 2,
                    *[{}] * 22,
                    *[{"inference_ms": 45.0}, {}, {}, {}, {}] * 4,
                ],
            ),
            ["opened:warning", "escalated:major", "cleared"],
        )
    )
    out.append(
        Scenario(
            "latency_p99",
            "cpe",
            "link",
            _script(
                "link",
                t0,
                [
                    *[{}] * 20,
                    *[{"latency_ms": 25.0}] * 4,
                    *[{"latency_ms": 45.0}] * 3,
                    *[{}] * 22,
                    *[{"latency_ms": 18.0}, {}, {}, {}] * 5,
                ],
            ),
            ["opened:major", "escalated:critical", "cleared"],
        )
    )
    flips = [{"cell_id": f"cell-{i % 2}"} for i in range(8)]
    out.append(
        Scenario(
            "cell_changes",
            "cpe",
            "link",
            _script("link", t0, [*flips, *[{"cell_id": "cell-1"}] * 70]),
            ["opened:warning", "escalated:major", "cleared"],
        )
    )
    return out


# --------------------------------------------------------------------------- engine tests

import time  # noqa: E402

import orjson  # noqa: E402
import pytest  # noqa: E402

from services.core.contracts import Topic, decode  # noqa: E402
from services.rules.config import parse_rules  # noqa: E402
from services.rules.engine import Engine, Transition  # noqa: E402

T0 = time.time() - 600


def key_transitions(trs: list[Transition]) -> list[str]:
    return [
        tr.transition if tr.transition == "cleared" else f"{tr.transition}:{tr.severity}"
        for tr in trs
        if tr.transition != "updated"
    ]


def run_scenario(
    engine: Engine, sc: Scenario, device: str, project: str = "p1"
) -> list[Transition]:
    topic = Topic(project, sc.kind, device, sc.stream)
    out: list[Transition] = []
    for rec in sc.records:
        trs = engine.process(topic, decode(sc.stream, orjson.dumps(rec)), rec["ts"] / 1000)
        out.extend(tr for tr in trs if tr.rule == sc.rule)
    return out


@pytest.mark.parametrize("sc", scenarios(T0), ids=lambda sc: sc.rule)
def test_engine_scenario(sc: Scenario) -> None:
    engine = Engine(parse_rules(TEST_RULES, "test.yaml"))
    trs = run_scenario(engine, sc, f"{sc.rule}-1")
    assert key_transitions(trs) == sc.expect
    if sc.updates:
        assert any(tr.transition == "updated" for tr in trs), "repeats must update the alarm"
    episode: list[int] = []
    for tr in trs:  # within one alarm, the repeat count only grows
        episode.append(tr.count)
        assert episode == sorted(episode)
        if tr.transition == "cleared":
            episode = []
    for tr in trs:
        assert tr.evidence["thresholds"]["raise"] is not None
        assert tr.message


def test_every_builtin_rule_has_a_scenario() -> None:
    from services.rules.builtin import BUILTIN

    timed = {"station_silent", "connection_lost"}  # scripted with a clock below
    # Templates (threshold_above/below) have theirs in tests/test_admin_rules.py.
    templates = {name for name, cls in BUILTIN.items() if cls.template}
    assert {sc.rule for sc in scenarios(T0)} | timed | templates == set(BUILTIN)


def _feed(engine: Engine, topic: Topic, rec: dict[str, Any], seen: float) -> list[Transition]:
    return engine.process(topic, decode(topic.stream, orjson.dumps(rec)), seen)


def test_station_silent_only_while_its_line_runs() -> None:
    engine = Engine(parse_rules(TEST_RULES, "test.yaml"))
    a, b = Topic("p1", "vision", "st-a", "inspection"), Topic("p1", "vision", "st-b", "inspection")
    now = T0
    _feed(engine, a, insp(now, 1), now)
    _feed(engine, b, insp(now, 1), now)
    # Both quiet: the line stopped, not a station fault.
    assert key_transitions(engine.tick(now + 10)) == []
    trs: list[Transition] = []
    for i in range(2, 8):  # b keeps producing, a stays silent
        now = T0 + 10 + i
        trs += _feed(engine, b, insp(now, i), now)
        trs += engine.tick(now)
    assert key_transitions([t for t in trs if t.device == "st-a"]) == ["opened:major"]
    assert key_transitions(_feed(engine, a, insp(now + 1, 2), now + 1)) == ["cleared"]


# station_silent as the defaults have it: the raise threshold longer than the line-activity
# window, so stations that stop together see a quiet line by the time either could alarm.
BREAK_RULES = TEST_RULES.replace(
    "station_silent: {raise: 2, line_active_within: 5s}",
    "station_silent: {raise: 3, line_active_within: 2s}",
)


def test_station_silent_ignores_other_kinds_on_the_line() -> None:
    """Stations stopping for a break while the project's CPE keeps reporting is a line stop."""
    assert BREAK_RULES != TEST_RULES
    engine = Engine(parse_rules(BREAK_RULES, "test.yaml"))
    a, b = Topic("p1", "vision", "st-a", "inspection"), Topic("p1", "vision", "st-b", "inspection")
    cpe, agv_topic = Topic("p1", "cpe", "cpe-1", "link"), Topic("p1", "agv", "agv-1", "agv")
    now = T0
    _feed(engine, a, insp(now, 1), now)
    _feed(engine, b, insp(now, 1), now)
    trs: list[Transition] = []
    for i in range(2, 12):  # both stations silent, the CPE and an AGV keep reporting
        now = T0 + i
        trs += _feed(engine, cpe, link(now, i), now)
        trs += _feed(engine, agv_topic, agv(now, i), now)
        trs += engine.tick(now)
    false = [(t.device, t.transition) for t in trs if t.rule == "station_silent"]
    assert false == [], f"{len(false)} station_silent transitions on a quiet line: {false}"
    # The same silence with another station still producing does alarm: the rule works.
    for i in range(12, 20):
        now = T0 + i
        trs += _feed(engine, b, insp(now, i), now)
        trs += engine.tick(now)
    silent = [t for t in trs if t.rule == "station_silent" and t.transition != "updated"]
    assert [(t.device, t.transition) for t in silent] == [("st-a", "opened")]


def test_station_silent_line_activity_from_other_shards_counts_stations_only() -> None:
    """Devices of another replica feed line activity too, under the same kind rule."""
    engine = Engine(parse_rules(BREAK_RULES, "test.yaml"))
    a = Topic("p1", "vision", "st-a", "inspection")
    _feed(engine, a, insp(T0, 1), T0)
    trs: list[Transition] = []
    for i in range(1, 10):  # another replica's CPE keeps reporting
        engine.seen_elsewhere("p1", "cpe", "cpe-9", T0 + i)
        trs += engine.tick(T0 + i)
    assert [t for t in trs if t.rule == "station_silent"] == []
    for i in range(10, 14):  # another replica's station keeps producing
        engine.seen_elsewhere("p1", "vision", "st-9", T0 + i)
        trs += engine.tick(T0 + i)
    assert key_transitions([t for t in trs if t.rule == "station_silent"]) == ["opened:major"]


def test_connection_lost_by_silence_and_by_offline_event() -> None:
    engine = Engine(parse_rules(TEST_RULES, "test.yaml"))
    topic = Topic("p1", "agv", "agv-1", "agv")
    _feed(engine, topic, agv(T0, 1), T0)
    assert engine.tick(T0 + 1) == []
    assert key_transitions(engine.tick(T0 + 2.5)) == ["opened:major"]
    assert key_transitions(engine.tick(T0 + 3.5)) == []  # still one alarm
    assert key_transitions(_feed(engine, topic, agv(T0 + 4, 2), T0 + 4)) == ["cleared"]
    trs = engine.connection("p1", "agv", "agv-1", online=False, at=T0 + 5)
    assert key_transitions(trs) == ["opened:major"]
    assert key_transitions(engine.connection("p1", "agv", "agv-1", online=True, at=T0 + 6)) == [
        "cleared"
    ]


def test_quiet_period_clears_an_alarm_whose_device_went_away() -> None:
    rules = parse_rules(TEST_RULES.replace("update_interval: 3s", "quiet_clear: 60s"), "t.yaml")
    engine = Engine(rules)
    topic = Topic("p1", "agv", "agv-q", "agv")
    assert key_transitions(_feed(engine, topic, agv(T0, 1, battery=15), T0)) == ["opened:warning"]
    assert [t for t in engine.tick(T0 + 30) if t.rule == "battery_low"] == []
    trs = [t for t in engine.tick(T0 + 61) if t.rule == "battery_low"]
    assert key_transitions(trs) == ["cleared"]
    assert trs[0].evidence["reason"] == "quiet"


def test_reload_keeps_state_of_unchanged_rules_and_clears_removed_ones() -> None:
    engine = Engine(parse_rules(TEST_RULES, "test.yaml"))
    topic = Topic("p1", "agv", "agv-r", "agv")
    _feed(engine, topic, agv(T0, 1, battery=15, state="estop"), T0)
    assert {(d.device, s.rule.name) for d, s in engine.active()} == {
        ("agv-r", "battery_low"),
        ("agv-r", "safety_stop"),
    }
    changed = TEST_RULES.replace("    safety_stop: {}\n", "").replace(
        "battery_low: {}", "battery_low: {raise: 25, clear: 35}"
    )
    trs = engine.reload(parse_rules(changed, "test.yaml"), T0 + 1)
    assert [(t.rule, t.transition) for t in trs] == [("safety_stop", "cleared")]
    # battery_low stays open (no second "opened") and now clears at 35, not 30.
    assert _feed(engine, topic, agv(T0 + 2, 2, battery=33), T0 + 2) == []
    assert key_transitions(_feed(engine, topic, agv(T0 + 3, 3, battery=36), T0 + 3)) == ["cleared"]


def test_device_and_project_overrides() -> None:
    text = TEST_RULES + (
        "projects:\n"
        "  p2:\n"
        "    kinds:\n"
        "      agv: {battery_low: {raise: 40, clear: 50}}\n"
        "    devices:\n"
        "      agv-off: {battery_low: {enabled: false}}\n"
    )
    engine = Engine(parse_rules(text, "t.yaml"))
    rec = agv(T0, 1, battery=35)
    assert _feed(engine, Topic("p1", "agv", "a", "agv"), rec, T0) == []
    assert key_transitions(_feed(engine, Topic("p2", "agv", "a", "agv"), rec, T0)) == [
        "opened:warning"
    ]
    assert _feed(engine, Topic("p2", "agv", "agv-off", "agv"), rec, T0) == []
