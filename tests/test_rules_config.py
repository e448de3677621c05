"""Rule files: the packaged defaults load, and bad files fail naming file, line and key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.rules.builtin import BUILTIN
from services.rules.config import RulesConfigError, compile_rule, load_rules, parse_rules


def test_packaged_defaults_cover_every_builtin_rule() -> None:
    rules = load_rules(None)
    names = {r.name for kind in ("vision", "agv", "cpe") for r in rules.rules_for("p", kind, "d")}
    assert names == {name for name, cls in BUILTIN.items() if not cls.template}


def test_packaged_defaults_match_the_rule_types_own_defaults() -> None:
    """The YAML documents the defaults; it must say what the code would do without it."""
    rules = load_rules(None)
    for kind in ("vision", "agv", "cpe"):
        for rule in rules.rules_for("p", kind, "d"):
            bare = compile_rule("x", rule.name, [{}], rules.quiet_clear_s)
            assert bare is not None
            assert bare.cfg.key() == rule.cfg.key(), rule.name


BAD = [
    (
        "version: 1\ndefaults:\n  agv:\n    battery_low:\n      raise: high\n",
        5,
        "defaults.agv.battery_low.raise",
        "expected a number",
    ),
    (
        "version: 1\ndefaults:\n  agv:\n    battery_low:\n      treshold: 3\n",
        5,
        "defaults.agv.battery_low.treshold",
        "unknown setting",
    ),
    (
        "version: 1\ndefaults:\n  agv:\n    battery_low: {raise: 20, clear: 10}\n",
        4,
        "battery_low.clear",
        "must not be below raise",
    ),
    (
        "version: 1\ndefaults:\n  agv:\n    brake_wear: {raise: 3}\n",
        4,
        "defaults.agv.brake_wear",
        "not a built-in rule",
    ),
    (
        "version: 1\ndefaults:\n  agv:\n    x: {type: nope}\n",
        4,
        "defaults.agv.x.type",
        "unknown rule type",
    ),
    (
        "version: 1\ndefaults:\n  agv:\n    stalled: {for: soon}\n",
        4,
        "defaults.agv.stalled.for",
        "expected a duration",
    ),
    ("version: 1\ndefaults:\n  agv: {}\n  agv: {}\n", 4, "defaults.agv", "duplicate key"),
    (
        "version: 1\ndefaults:\n  agv:\n    battery_low: {severity: urgent}\n",
        4,
        "defaults.agv.battery_low.severity",
        "expected one of",
    ),
    ("version: 2\n", 1, "version", "unsupported version"),
    (
        "version: 1\ndefaults:\n  vision:\n    defect_rate: {window: 0}\n",
        4,
        "defaults.vision.defect_rate.window",
        "at least 1",
    ),
    (
        "version: 1\nprojects:\n  p1:\n    devices:\n      d1:\n        nope: {}\n",
        6,
        "projects.p1.devices.d1.nope",
        "no default defines",
    ),
    ("version: 1\ndefaults:\n  agv:\n    battery_low: [1, 2\n", 5, "", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "key", "problem"), BAD)
def test_bad_rule_file_names_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, problem: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesConfigError) as err:
        load_rules(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert key in message
    assert problem in message
    assert err.value.line == line


def test_device_override_of_a_project_kind_override_layers_key_by_key() -> None:
    rules = parse_rules(
        "version: 1\n"
        "defaults:\n  agv:\n    battery_low: {raise: 20, clear: 30, severity: warning}\n"
        "projects:\n  p1:\n"
        "    kinds:\n      agv: {battery_low: {raise: 25, clear: 35}}\n"
        "    devices:\n      a1: {battery_low: {severity: major}}\n",
        "t.yaml",
    )
    (rule,) = rules.rules_for("p1", "agv", "a1")
    assert (rule.cfg.raise_at, rule.cfg.clear_at, rule.cfg.severity) == (25, 35, "major")
    (other,) = rules.rules_for("p2", "agv", "a1")
    assert (other.cfg.raise_at, other.cfg.severity) == (20, "warning")


def test_service_refuses_to_start_with_a_bad_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ndefaults:\n  agv:\n    battery_low: {raise: low}\n")
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "rules"],
        capture_output=True,
        text=True,
        env={**os.environ, "F5G_RULES__RULES_FILE": str(path), "F5G_RULES__METRICS_PORT": "0"},
        timeout=60,
    )
    assert out.returncode == 2
    assert f"{path}:4:" in out.stderr
    assert "battery_low.raise" in out.stderr
