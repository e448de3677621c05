"""The effective rules of a device: every setting with the layer that decided it and the
line that layer wrote it on, resolved exactly as the compiled rule resolves it."""

from __future__ import annotations

from typing import Any

from services.rules.builtin import BUILTIN
from services.rules.config import EffectiveRule, load_rules, parse_rules
from services.rules.window import WindowSpec

DOC = """\
version: 1
alarms:
  quiet_clear: 10m
defaults:
  agv:
    battery_low: {raise: 25, clear: 35}
    stalled: {raise: 10}
  cpe:
    rsrp_low: {}
projects:
  hall-1:
    kinds:
      agv:
        battery_low: {clear: 40, severity: major}
        spindle_hot: {type: threshold_above, metric: spindle_c, raise: 80}
    devices:
      agv-7:
        battery_low: {raise: 30}
        stalled: {enabled: false}
"""


def at(source: str, line: str, key: str) -> str:
    """`source:line:column` of the value of `key` on the one line of DOC holding `line`."""
    (number,) = [i for i, text in enumerate(DOC.splitlines(), 1) if line in text]
    text = DOC.splitlines()[number - 1]
    start = text.index(line)
    return f"{source}:{number}:{text.index(f'{key}: ', start) + len(key) + 3}"


def _settings(rule: EffectiveRule) -> dict[str, tuple[Any, str, str | None]]:
    return {v.key: (v.value, v.layer, v.source) for v in rule.settings}


def _by_name(rules: list[EffectiveRule]) -> dict[str, EffectiveRule]:
    return {r.name: r for r in rules}


def test_each_layer_wins_key_by_key_with_its_line() -> None:
    rules = _by_name(parse_rules(DOC, "rules v3").effective("hall-1", ["agv"], "agv-7"))
    assert set(rules) == {"battery_low", "stalled", "spindle_hot"}
    battery = _settings(rules["battery_low"])
    # The device's own layer wins `raise`, the project's kind layer `clear` and
    # `severity`, nobody wrote `for`: the rule type's built-in default.
    assert battery["raise"] == (
        30.0,
        "projects.hall-1.devices.agv-7",
        at("rules v3", "battery_low: {raise: 30}", "raise"),
    )
    assert battery["clear"] == (
        40.0,
        "projects.hall-1.kinds.agv",
        at("rules v3", "battery_low: {clear: 40", "clear"),
    )
    assert battery["severity"] == (
        "major",
        "projects.hall-1.kinds.agv",
        at("rules v3", "battery_low: {clear: 40", "severity"),
    )
    assert battery["for"] == (BUILTIN["battery_low"].defaults.get("for", 0.0), "builtin", None)
    assert battery["quiet_clear"] == (
        600.0,
        "alarms.quiet_clear",
        at("rules v3", "quiet_clear: 10m", "quiet_clear"),
    )
    assert battery["type"] == ("battery_low", "builtin", None)
    assert rules["battery_low"].enabled
    assert rules["battery_low"].kind == "agv"
    # The kind default layer: `raise` of stalled comes from defaults.agv.
    stalled = _settings(rules["stalled"])
    assert stalled["raise"] == (
        10.0,
        "defaults.agv",
        at("rules v3", "stalled: {raise: 10}", "raise"),
    )
    assert stalled["enabled"] == (
        False,
        "projects.hall-1.devices.agv-7",
        at("rules v3", "stalled: {enabled: false}", "enabled"),
    )
    assert not rules["stalled"].enabled
    # A rule the project defines itself: its type is the project's, clear follows raise.
    spindle = _settings(rules["spindle_hot"])
    assert spindle["type"] == (
        "threshold_above",
        "projects.hall-1.kinds.agv",
        at("rules v3", "spindle_hot:", "type"),
    )
    assert spindle["metric"][:2] == ("spindle_c", "projects.hall-1.kinds.agv")
    assert spindle["clear"][:2] == (80.0, "projects.hall-1.kinds.agv")


def test_without_the_device_layer_the_project_and_default_layers_decide() -> None:
    ruleset = parse_rules(DOC, "rules.yaml")
    other = _by_name(ruleset.effective("hall-1", ["agv"], "agv-8"))
    assert _settings(other["battery_low"])["raise"] == (
        25.0,
        "defaults.agv",
        at("rules.yaml", "battery_low: {raise: 25", "raise"),
    )
    assert other["stalled"].enabled
    elsewhere = _by_name(ruleset.effective("hall-2", ["agv"], "agv-7"))
    assert set(elsewhere) == {"battery_low", "stalled"}
    battery = _settings(elsewhere["battery_low"])
    assert battery["clear"] == (
        35.0,
        "defaults.agv",
        at("rules.yaml", "battery_low: {raise: 25", "clear"),
    )
    assert battery["severity"][1:] == ("builtin", None)


def test_several_profiles_bring_their_rules_and_the_first_one_wins() -> None:
    ruleset = parse_rules(DOC, "rules.yaml")
    rules = ruleset.effective("hall-1", ["agv", "cpe"], "agv-7")
    assert [(r.name, r.kind) for r in rules] == [
        ("battery_low", "agv"),
        ("stalled", "agv"),
        ("spindle_hot", "agv"),
        ("rsrp_low", "cpe"),
    ]
    assert ruleset.effective("hall-1", ["forklift"], "x") == []


def test_the_effective_values_are_the_compiled_ones() -> None:
    """Every enabled rule's view agrees with the rule the engine runs, key by key."""
    for ruleset in (parse_rules(DOC, "rules.yaml"), load_rules(None)):
        for kind in ("vision", "agv", "cpe"):
            for device in ("agv-7", "agv-8"):
                compiled = {r.name: r.cfg for r in ruleset.rules_for("hall-1", kind, device)}
                for rule in ruleset.effective("hall-1", [kind], device):
                    assert rule.enabled == (rule.name in compiled), rule.name
                    if not rule.enabled:
                        continue
                    cfg = compiled[rule.name]
                    got = {v.key: v.value for v in rule.settings}
                    esc = got["escalate"] or {}
                    assert (
                        got["type"],
                        got["severity"],
                        got["raise"],
                        got["clear"],
                        got["for"],
                        got["clear_for"],
                        got["quiet_clear"],
                        esc.get("at"),
                        esc.get("severity"),
                    ) == (
                        cfg.type,
                        cfg.severity,
                        cfg.raise_at,
                        cfg.clear_at,
                        cfg.for_s,
                        cfg.clear_for_s,
                        cfg.quiet_clear_s,
                        cfg.escalate_at,
                        cfg.escalate_severity,
                    ), rule.name
                    for key, value in cfg.params.items():
                        if isinstance(value, WindowSpec):
                            value = (
                                {"count": value.count}
                                if value.count is not None
                                else {"seconds": value.seconds}
                            )
                        assert got[key] == value, (rule.name, key)
