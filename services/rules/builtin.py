"""The built-in rules: what each one watches and how it turns records into a level.

A rule is pure and small. `evaluate` sees one record of its stream (device time `t`, epoch
seconds) and answers with a level: RAISE / ESCALATE when the anomaly is present, CLEAR when
the all-clear holds, HOLD in the hysteresis band between the two, SKIP when the record says
nothing about it. The engine turns levels into alarm transitions (durations, one alarm per
device and rule, escalation), so no rule deals with the alarm lifecycle itself.

Rules with `timed = True` are also asked by the engine's clock tick (`check`), for anomalies
that are an absence of records (a silent station, an AGV without status). Values and
evidence are computed only when a transition is emitted, which keeps `evaluate` O(1).

`docs/rules.md` explains every rule and why its defaults are what they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

from services.core.contracts import AgvRecord, Inspection, LinkKpi
from services.rules.window import Window, WindowSpec

SKIP: Final = -9
CLEAR: Final = -1
HOLD: Final = 0
RAISE: Final = 1
ESCALATE: Final = 2

SEVERITIES: Final = ("info", "warning", "major", "critical")


@dataclass(frozen=True, slots=True)
class Param:
    """One rule setting: its value type, default and meaning (also used for docs/errors)."""

    kind: str  # float | int | duration | window | bool | str | strlist | floatmap
    default: Any
    help: str = ""


@dataclass(frozen=True)
class RuleConfig:
    """A rule's settings after layering defaults, project and device overrides."""

    name: str
    type: str
    severity: str
    raise_at: float
    clear_at: float
    for_s: float
    clear_for_s: float
    quiet_clear_s: float
    escalate_at: float | None
    escalate_severity: str | None
    params: dict[str, Any] = field(default_factory=dict)
    # The rule file's own name per language (`name: {en: ..., zh: ...}`), shown instead of
    # the built-in type's name. Not part of `key`: renaming keeps the rule's state.
    names: dict[str, str] | None = None

    def key(self) -> tuple[Any, ...]:
        """Identity of the settings; a reload keeps a rule's state only when this is equal."""
        return (
            self.name,
            self.type,
            self.severity,
            self.raise_at,
            self.clear_at,
            self.for_s,
            self.clear_for_s,
            self.quiet_clear_s,
            self.escalate_at,
            self.escalate_severity,
            tuple(sorted((k, repr(v)) for k, v in self.params.items())),
        )


class LineView(Protocol):
    """What a timed rule may ask the engine about other devices."""

    def line_last_seen(self, project: str, line: str, excluding: str) -> float | None: ...


class DeviceView(Protocol):
    project: str
    device: str
    line: str
    last_seen: float | None


def _above(v: float, raise_at: float, clear_at: float, esc: float | None) -> int:
    if v >= raise_at:
        return ESCALATE if esc is not None and v >= esc else RAISE
    return CLEAR if v <= clear_at else HOLD


def _below(v: float, raise_at: float, clear_at: float, esc: float | None) -> int:
    if v <= raise_at:
        return ESCALATE if esc is not None and v <= esc else RAISE
    return CLEAR if v >= clear_at else HOLD


class Rule:
    """Base of the compiled rules; one instance is shared by every device it applies to."""

    type_name: ClassVar[str]
    stream: ClassVar[str]
    direction: ClassVar[str] = "above"  # where the anomaly lies relative to `raise`
    value_name: ClassVar[str]
    unit: ClassVar[str] = ""
    timed: ClassVar[bool] = False
    summary: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]  # raise, clear, severity, for, clear_for, escalate
    params_spec: ClassVar[dict[str, Param]] = {}
    # A template has no instance of its own in the packaged defaults: it is written per
    # use (which metric, which threshold), e.g. threshold_above.
    template: ClassVar[bool] = False

    def __init__(self, cfg: RuleConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.raise_at = cfg.raise_at
        self.clear_at = cfg.clear_at
        self.esc = cfg.escalate_at
        self.p = cfg.params

    def new_state(self) -> Any:
        return None

    def evaluate(self, state: Any, rec: Any, t: float) -> int:
        raise NotImplementedError

    def check(self, state: Any, now: float, dev: DeviceView, lines: LineView) -> int:
        return SKIP

    def value(self, state: Any) -> float | None:
        return None

    def evidence(self, state: Any) -> dict[str, Any]:
        return {}

    def thresholds(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "direction": self.direction,
            "raise": self.raise_at,
            "clear": self.clear_at,
        }
        if self.esc is not None:
            out["escalate"] = self.esc
        if self.cfg.for_s:
            out["for_s"] = self.cfg.for_s
        if self.cfg.clear_for_s:
            out["clear_for_s"] = self.cfg.clear_for_s
        return out

    def message(self, value: float | None) -> str:
        shown = "n/a" if value is None else f"{value:.4g}{self.unit}"
        rel = ">=" if self.direction == "above" else "<="
        return f"{self.summary}: {self.value_name} {shown} ({rel} {self.raise_at:g}{self.unit})"

    def text_facts(self, state: Any) -> dict[str, Any]:
        """What the alarm's message is made of, stored in its evidence under `text`, so
        every reader renders it in its own language (`services/protocols/texts.py`)
        instead of reading the English `message`."""
        facts: dict[str, Any] = {
            "rule_type": self.cfg.type,
            "raise": self.raise_at,
            "direction": self.direction,
        }
        if self.cfg.names:
            facts["name"] = dict(self.cfg.names)
        return facts


# --------------------------------------------------------------------------- shared parts


class _Latest:
    """State of rules whose value is the latest record's field."""

    __slots__ = ("v",)

    def __init__(self) -> None:
        self.v: float | None = None


class _FieldRule(Rule):
    """The value is one numeric field of the record, compared with raise/clear."""

    field_name: ClassVar[str]

    def new_state(self) -> _Latest:
        return _Latest()

    def evaluate(self, state: _Latest, rec: Any, t: float) -> int:
        v = getattr(rec, self.field_name)
        if v is None:
            return SKIP
        state.v = v
        if self.direction == "above":
            return _above(v, self.raise_at, self.clear_at, self.esc)
        return _below(v, self.raise_at, self.clear_at, self.esc)

    def value(self, state: _Latest) -> float | None:
        return state.v

    def evidence(self, state: _Latest) -> dict[str, Any]:
        return {self.field_name: state.v}


def _window_spec(p: dict[str, Any]) -> WindowSpec:
    w = p["window"]
    assert isinstance(w, WindowSpec)
    return w


# --------------------------------------------------------------------------- vision


class _RateState:
    __slots__ = ("baseline", "n_base", "win")

    def __init__(self, spec: WindowSpec) -> None:
        self.win = Window(spec)
        self.baseline = 0.0
        self.n_base = 0


class DefectRate(Rule):
    type_name = "defect_rate"
    stream = "inspection"
    value_name = "defect rate"
    summary = "defect rate high"
    defaults = {"raise": 0.10, "clear": 0.06, "severity": "major", "escalate": {"at": 0.25}}
    params_spec = {
        "window": Param("window", 200, "Rolling window: a part count or a duration."),
        "min_samples": Param("int", 50, "Parts needed in the window before judging."),
        "baseline_factor": Param("float", 3.0, "Also raise at this multiple of the baseline."),
        "baseline_floor": Param("float", 0.02, "Baseline used when the learned one is lower."),
        "baseline_samples": Param("int", 2000, "Parts the baseline averages over (EWMA)."),
    }

    def new_state(self) -> _RateState:
        return _RateState(_window_spec(self.p))

    def _limits(self, s: _RateState) -> tuple[float, float]:
        raise_at = self.raise_at
        if s.n_base >= self.p["baseline_samples"]:
            relative = self.p["baseline_factor"] * max(s.baseline, self.p["baseline_floor"])
            raise_at = min(raise_at, relative)
        return raise_at, raise_at * (self.clear_at / self.raise_at if self.raise_at else 1.0)

    def evaluate(self, state: _RateState, rec: Inspection, t: float) -> int:
        fail = 1.0 if rec.result == "fail" else 0.0
        win = state.win
        win.push(t, fail)
        if len(win) < self.p["min_samples"]:
            return HOLD
        rate = win.sum / len(win)
        raise_at, clear_at = self._limits(state)
        level = _above(rate, raise_at, clear_at, self.esc)
        if level == CLEAR:  # learn the normal rate only while clearly normal
            n = min(state.n_base + 1, self.p["baseline_samples"])
            state.n_base += 1
            state.baseline += (fail - state.baseline) / n
        return level

    def value(self, state: _RateState) -> float:
        return state.win.mean()

    def evidence(self, state: _RateState) -> dict[str, Any]:
        raise_at, clear_at = self._limits(state)
        learned = state.n_base >= self.p["baseline_samples"]
        return {
            "defect_rate": round(state.win.mean(), 6),
            "fails": round(state.win.sum),
            "parts": len(state.win),
            "window": _window_spec(self.p).describe(),
            "baseline": round(state.baseline, 6) if learned else None,
            "effective_raise": round(raise_at, 6),
            "effective_clear": round(clear_at, 6),
        }

    def text_facts(self, state: _RateState) -> dict[str, Any]:
        # The threshold that judged: a learned baseline may have lowered the configured one.
        return {**super().text_facts(state), "raise": round(self._limits(state)[0], 6)}


class _Streak:
    __slots__ = ("n", "part")

    def __init__(self) -> None:
        self.n = 0
        self.part = ""


class ConsecutiveFails(Rule):
    type_name = "consecutive_fails"
    stream = "inspection"
    value_name = "consecutive fails"
    summary = "consecutive fails at station"
    defaults = {"raise": 5, "clear": 0, "severity": "major", "escalate": {"at": 10}}

    def new_state(self) -> _Streak:
        return _Streak()

    def evaluate(self, state: _Streak, rec: Inspection, t: float) -> int:
        if rec.result == "fail":
            state.n += 1
            state.part = rec.part_id
        else:
            state.n = 0
        return _above(state.n, self.raise_at, self.clear_at, self.esc)

    def value(self, state: _Streak) -> float:
        return float(state.n)

    def evidence(self, state: _Streak) -> dict[str, Any]:
        return {"consecutive_fails": state.n, "last_failed_part": state.part or None}


class _DriftState:
    __slots__ = ("baseline", "n_base", "win")

    def __init__(self, spec: WindowSpec) -> None:
        self.win = Window(spec)
        self.baseline = 0.0
        self.n_base = 0


class ConfidenceDrift(Rule):
    type_name = "confidence_drift"
    stream = "inspection"
    value_name = "confidence drift"
    summary = "mean confidence drifted"
    defaults = {"raise": 0.08, "clear": 0.04, "severity": "warning", "escalate": {"at": 0.2}}
    params_spec = {
        "window": Param("window", 200, "Rolling window of the mean: a count or a duration."),
        "min_samples": Param("int", 100, "Records needed in the window before judging."),
        "reference": Param("float", None, "Fixed expected mean confidence (else learned)."),
        "baseline_samples": Param("int", 1000, "Records the learned reference averages over."),
    }

    def new_state(self) -> _DriftState:
        return _DriftState(_window_spec(self.p))

    def _reference(self, s: _DriftState) -> float | None:
        ref = self.p["reference"]
        if ref is not None:
            return float(ref)
        return s.baseline if s.n_base >= self.p["baseline_samples"] else None

    def evaluate(self, state: _DriftState, rec: Inspection, t: float) -> int:
        c = rec.confidence
        win = state.win
        win.push(t, c)
        ref = self._reference(state)
        level = HOLD
        if ref is not None and len(win) >= self.p["min_samples"]:
            level = _above(abs(win.sum / len(win) - ref), self.raise_at, self.clear_at, self.esc)
        if ref is None or level == CLEAR:
            n = min(state.n_base + 1, self.p["baseline_samples"])
            state.n_base += 1
            state.baseline += (c - state.baseline) / n
        return level

    def value(self, state: _DriftState) -> float | None:
        ref = self._reference(state)
        return None if ref is None else abs(state.win.mean() - ref)

    def evidence(self, state: _DriftState) -> dict[str, Any]:
        return {
            "mean_confidence": round(state.win.mean(), 6),
            "reference": self._reference(state),
            "samples": len(state.win),
            "window": _window_spec(self.p).describe(),
        }


class _QuantileRule(Rule):
    """p(q) of a value over a window against limits, via counts of samples above limits."""

    quantile_default: ClassVar[float]

    def _sample(self, rec: Any) -> float | None:
        raise NotImplementedError

    def _limits(self) -> tuple[float, ...]:
        limits = [self.raise_at, self.clear_at]
        if self.esc is not None:
            limits.append(self.esc)
        return tuple(limits)

    def new_state(self) -> Window:
        return Window(_window_spec(self.p), self._limits())

    def evaluate(self, state: Window, rec: Any, t: float) -> int:
        v = self._sample(rec)
        if v is None:
            return SKIP
        state.push(t, v)
        n = len(state)
        if n < self.p["min_samples"]:
            return HOLD
        allowed = (1.0 - self.p["quantile"]) * n
        above = state.above
        if above[0] > allowed:
            return ESCALATE if self.esc is not None and above[2] > allowed else RAISE
        return CLEAR if above[1] <= allowed else HOLD

    def value(self, state: Window) -> float:
        return state.quantile(self.p["quantile"])

    def evidence(self, state: Window) -> dict[str, Any]:
        return {
            f"p{round(self.p['quantile'] * 100):d}": state.quantile(self.p["quantile"]),
            "max": max(state.values) if state.values else None,
            "samples": len(state),
            "window": _window_spec(self.p).describe(),
        }


class InferenceP95(_QuantileRule):
    type_name = "inference_p95"
    stream = "inspection"
    value_name = "inference time p95"
    unit = " ms"
    summary = "inference time over budget"
    defaults = {"raise": 50.0, "clear": 40.0, "severity": "warning", "escalate": {"at": 100.0}}
    params_spec = {
        "window": Param("window", 200, "Rolling window: a count or a duration."),
        "min_samples": Param("int", 50, "Records needed in the window before judging."),
        "quantile": Param("float", 0.95, "Which quantile is held to the budget."),
    }

    def _sample(self, rec: Inspection) -> float:
        return float(rec.inference_ms)


class _Silence:
    __slots__ = ("silent",)

    def __init__(self) -> None:
        self.silent = 0.0


class StationSilent(Rule):
    type_name = "station_silent"
    stream = "inspection"
    value_name = "silent for"
    unit = " s"
    timed = True
    summary = "station silent while its line runs"
    defaults = {"raise": 120.0, "clear": 0.0, "severity": "major"}
    params_spec = {
        "line_active_within": Param(
            "duration", 60.0, "The line runs if another of its stations reported this recently."
        ),
    }

    def new_state(self) -> _Silence:
        return _Silence()

    def evaluate(self, state: _Silence, rec: Inspection, t: float) -> int:
        state.silent = 0.0
        return CLEAR

    def check(self, state: _Silence, now: float, dev: DeviceView, lines: LineView) -> int:
        if dev.last_seen is None:
            return SKIP
        silent = now - dev.last_seen
        state.silent = silent
        if silent < self.raise_at:
            return SKIP
        other = lines.line_last_seen(dev.project, dev.line, dev.device)
        if other is None or now - other > self.p["line_active_within"]:
            return HOLD  # the whole line is quiet: a stop, not a station fault
        return ESCALATE if self.esc is not None and silent >= self.esc else RAISE

    def value(self, state: _Silence) -> float:
        return round(state.silent, 3)

    def evidence(self, state: _Silence) -> dict[str, Any]:
        return {"silent_s": round(state.silent, 3)}


# --------------------------------------------------------------------------- AGV


class BatteryLow(_FieldRule):
    type_name = "battery_low"
    stream = "agv"
    direction = "below"
    field_name = "battery"
    value_name = "battery"
    unit = " %"
    summary = "AGV battery low"
    defaults = {
        "raise": 20.0,
        "clear": 30.0,
        "severity": "warning",
        "escalate": {"at": 10.0, "severity": "critical"},
    }


class LocalizationLow(_FieldRule):
    type_name = "localization_low"
    stream = "agv"
    direction = "below"
    field_name = "localization"
    value_name = "localization score"
    summary = "AGV localization poor"
    defaults = {
        "raise": 0.5,
        "clear": 0.7,
        "for": 5.0,
        "severity": "major",
        "escalate": {"at": 0.2, "severity": "critical"},
    }


class _Flag:
    __slots__ = ("code", "state", "v")

    def __init__(self) -> None:
        self.v = 0.0
        self.state = ""
        self.code: str | None = None


class SafetyStop(Rule):
    type_name = "safety_stop"
    stream = "agv"
    value_name = "safety stop"
    summary = "AGV emergency stop or protective field violation"
    defaults = {"raise": 1.0, "clear": 0.0, "severity": "critical"}
    params_spec = {
        "states": Param("strlist", ["estop"], "Reported states that mean a safety stop."),
        "error_codes": Param(
            "strlist",
            ["FIELD_VIOLATION", "PROTECTIVE_FIELD", "E-FIELD"],
            "Error-code prefixes that mean a protective field violation.",
        ),
    }

    def __init__(self, cfg: RuleConfig) -> None:
        super().__init__(cfg)
        self._states = frozenset(self.p["states"])
        self._codes = tuple(self.p["error_codes"])

    def new_state(self) -> _Flag:
        return _Flag()

    def evaluate(self, state: _Flag, rec: AgvRecord, t: float) -> int:
        hit = rec.state in self._states or (
            rec.error_code is not None and rec.error_code.startswith(self._codes)
        )
        state.v = 1.0 if hit else 0.0
        state.state = rec.state
        state.code = rec.error_code
        return RAISE if hit else CLEAR

    def value(self, state: _Flag) -> float:
        return state.v

    def evidence(self, state: _Flag) -> dict[str, Any]:
        return {"state": state.state, "error_code": state.code}

    def text_facts(self, state: _Flag) -> dict[str, Any]:
        detail = (state.code or state.state or None) if state.v else None
        return {**super().text_facts(state), "detail": detail}


class AgvError(Rule):
    type_name = "agv_error"
    stream = "agv"
    value_name = "error"
    summary = "AGV reports an error"
    defaults = {"raise": 1.0, "clear": 0.0, "severity": "major"}
    params_spec = {
        "ignore_codes": Param("strlist", [], "Error-code prefixes that are not alarms."),
    }

    def __init__(self, cfg: RuleConfig) -> None:
        super().__init__(cfg)
        self._ignore = tuple(self.p["ignore_codes"])

    def new_state(self) -> _Flag:
        return _Flag()

    def evaluate(self, state: _Flag, rec: AgvRecord, t: float) -> int:
        code = rec.error_code
        hit = (code is not None and not (self._ignore and code.startswith(self._ignore))) or (
            rec.state == "error"
        )
        state.v = 1.0 if hit else 0.0
        state.state = rec.state
        if hit:
            state.code = code
        return RAISE if hit else CLEAR

    def value(self, state: _Flag) -> float:
        return state.v

    def evidence(self, state: _Flag) -> dict[str, Any]:
        return {"state": state.state, "error_code": state.code}

    def text_facts(self, state: _Flag) -> dict[str, Any]:
        detail = (state.code or state.state or None) if state.v else None
        return {**super().text_facts(state), "detail": detail}

    def message(self, value: float | None) -> str:
        return self.summary


class _Stall:
    __slots__ = ("at", "ax", "ay", "stuck")

    def __init__(self) -> None:
        self.ax = math.nan
        self.ay = math.nan
        self.at = 0.0
        self.stuck = 0.0


class Stalled(Rule):
    type_name = "stalled"
    stream = "agv"
    value_name = "stalled for"
    unit = " s"
    summary = "AGV stalled: moving but not moving"
    defaults = {"raise": 30.0, "clear": 0.0, "severity": "major", "escalate": {"at": 120.0}}
    params_spec = {
        "min_move": Param("float", 0.2, "Metres the AGV must move to count as moving."),
        "states": Param("strlist", ["moving"], "Reported states that claim motion."),
    }

    def __init__(self, cfg: RuleConfig) -> None:
        super().__init__(cfg)
        self._states = frozenset(self.p["states"])
        self._move2 = float(self.p["min_move"]) ** 2

    def new_state(self) -> _Stall:
        return _Stall()

    def evaluate(self, state: _Stall, rec: AgvRecord, t: float) -> int:
        if rec.state not in self._states:
            state.ax = math.nan
            state.stuck = 0.0
            return CLEAR
        x, y = rec.x, rec.y
        if x is None or y is None:
            return SKIP  # no position reported: it says nothing about moving (not 0, 0)
        dx = x - state.ax
        dy = y - state.ay
        if not dx * dx + dy * dy <= self._move2:  # also true for the NaN anchor
            state.ax, state.ay, state.at = x, y, t
            state.stuck = 0.0
            return CLEAR
        state.stuck = t - state.at
        return _above(state.stuck, self.raise_at, -1.0, self.esc)

    def value(self, state: _Stall) -> float:
        return round(state.stuck, 3)

    def evidence(self, state: _Stall) -> dict[str, Any]:
        return {"stalled_s": round(state.stuck, 3), "x": state.ax, "y": state.ay}


class _Conn:
    __slots__ = ("offline", "silent")

    def __init__(self) -> None:
        self.silent = 0.0
        self.offline = False


class ConnectionLost(Rule):
    type_name = "connection_lost"
    stream = "agv"
    value_name = "no status for"
    unit = " s"
    timed = True
    summary = "AGV connection lost or no status"
    defaults = {"raise": 30.0, "clear": 0.0, "severity": "major", "escalate": {"at": 300.0}}

    def new_state(self) -> _Conn:
        return _Conn()

    def evaluate(self, state: _Conn, rec: AgvRecord, t: float) -> int:
        state.silent = 0.0
        state.offline = False
        return CLEAR

    def check(self, state: _Conn, now: float, dev: DeviceView, lines: LineView) -> int:
        if dev.last_seen is None:
            return SKIP
        state.silent = now - dev.last_seen
        if state.offline:
            return ESCALATE if self.esc is not None and state.silent >= self.esc else RAISE
        if state.silent < self.raise_at:
            return SKIP
        return ESCALATE if self.esc is not None and state.silent >= self.esc else RAISE

    def value(self, state: _Conn) -> float:
        return round(state.silent, 3)

    def evidence(self, state: _Conn) -> dict[str, Any]:
        return {"no_status_s": round(state.silent, 3), "offline_event": state.offline}


# --------------------------------------------------------------------------- 5G link


class RsrpLow(_FieldRule):
    type_name = "rsrp_low"
    stream = "link"
    direction = "below"
    field_name = "rsrp"
    value_name = "RSRP"
    unit = " dBm"
    summary = "5G signal weak (RSRP)"
    defaults = {
        "raise": -110.0,
        "clear": -105.0,
        "for": 10.0,
        "severity": "warning",
        "escalate": {"at": -120.0, "severity": "major"},
    }


class SinrLow(_FieldRule):
    type_name = "sinr_low"
    stream = "link"
    direction = "below"
    field_name = "sinr"
    value_name = "SINR"
    unit = " dB"
    summary = "5G signal noisy (SINR)"
    defaults = {
        "raise": 0.0,
        "clear": 3.0,
        "for": 10.0,
        "severity": "warning",
        "escalate": {"at": -5.0, "severity": "major"},
    }


class LossHigh(_FieldRule):
    type_name = "loss_high"
    stream = "link"
    field_name = "loss_pct"
    value_name = "packet loss"
    unit = " %"
    summary = "5G packet loss high"
    defaults = {
        "raise": 1.0,
        "clear": 0.5,
        "for": 10.0,
        "severity": "warning",
        "escalate": {"at": 5.0, "severity": "major"},
    }


class LatencyP99(_QuantileRule):
    """Latency is divided by the slice's budget, so one window serves any slice."""

    type_name = "latency_p99"
    stream = "link"
    value_name = "latency p99 / slice budget"
    summary = "5G latency over the slice budget"
    defaults = {"raise": 1.0, "clear": 0.8, "severity": "major", "escalate": {"at": 2.0}}
    params_spec = {
        "window": Param("window", 100, "Rolling window: a count or a duration."),
        "min_samples": Param("int", 50, "Records needed in the window before judging."),
        "quantile": Param("float", 0.99, "Which quantile is held to the budget."),
        "budgets_ms": Param(
            "floatmap",
            {"URLLC": 20.0, "eMBB": 50.0, "mMTC": 200.0, "default": 50.0},
            "Latency budget per network slice; `default` for records without a known slice.",
        ),
    }

    def __init__(self, cfg: RuleConfig) -> None:
        super().__init__(cfg)
        self._budgets: dict[str | None, float] = dict(self.p["budgets_ms"])
        self._default = float(self._budgets.get("default", 50.0))

    def _sample(self, rec: LinkKpi) -> float:
        return float(rec.latency_ms) / self._budgets.get(rec.slice, self._default)

    def evidence(self, state: Window) -> dict[str, Any]:
        q = self.p["quantile"]
        ratio = state.quantile(q)
        return {
            "latency_ratio": round(ratio, 4),
            "budgets_ms": self.p["budgets_ms"],
            "samples": len(state),
            "window": _window_spec(self.p).describe(),
        }


class _Cells:
    __slots__ = ("cell", "changes", "n")

    def __init__(self) -> None:
        self.cell: str | None = None
        self.changes: Window | None = None
        self.n = 0


class CellChanges(Rule):
    type_name = "cell_changes"
    stream = "link"
    value_name = "cell changes"
    summary = "frequent cell changes"
    defaults = {"raise": 5.0, "clear": 2.0, "severity": "warning", "escalate": {"at": 15.0}}
    params_spec = {
        "window": Param("window", 600.0, "Time window the changes are counted over."),
    }

    def new_state(self) -> _Cells:
        s = _Cells()
        spec = _window_spec(self.p)
        s.changes = Window(WindowSpec(spec.count, spec.seconds, max_samples=1000))
        return s

    def evaluate(self, state: _Cells, rec: LinkKpi, t: float) -> int:
        cell = rec.cell_id
        if cell is None:
            return SKIP
        win = state.changes
        assert win is not None
        win.push(t, 1.0 if state.cell is not None and cell != state.cell else 0.0)
        state.cell = cell
        return _above(win.sum, self.raise_at, self.clear_at, self.esc)

    def value(self, state: _Cells) -> float:
        return float(round(state.changes.sum)) if state.changes else 0.0

    def evidence(self, state: _Cells) -> dict[str, Any]:
        return {
            "changes": self.value(state),
            "cell_id": state.cell,
            "window": _window_spec(self.p).describe(),
        }


# --------------------------------------------------------------------------- any metric


class _MetricThreshold(Rule):
    """A threshold on one named metric of the telemetry stream (native telemetry and
    Sparkplug B metrics alike): raise/clear give the hysteresis, `for`/`clear_for` the
    durations, `escalate` the second level, as for every rule. `metric` and `raise` are
    required; without `clear` the alarm clears where it was raised."""

    stream = "telemetry"
    template = True
    value_name = "value"
    summary = "Threshold crossed"
    defaults = {"raise": None, "clear": None, "severity": "major"}
    params_spec = {
        "metric": Param("str", None, "Name of the metric, as the device sends it."),
        "unit": Param("str", "", "Unit shown in the alarm message, e.g. °C."),
    }

    def new_state(self) -> _Latest:
        return _Latest()

    def evaluate(self, state: _Latest, rec: Any, t: float) -> int:
        v = rec.metrics.get(self.p["metric"])
        if v is None:
            return SKIP
        state.v = float(v)
        if self.direction == "above":
            return _above(state.v, self.raise_at, self.clear_at, self.esc)
        return _below(state.v, self.raise_at, self.clear_at, self.esc)

    def value(self, state: _Latest) -> float | None:
        return state.v

    def evidence(self, state: _Latest) -> dict[str, Any]:
        return {"metric": self.p["metric"], "value": state.v}

    def text_facts(self, state: _Latest) -> dict[str, Any]:
        facts = super().text_facts(state)
        return {**facts, "metric": self.p["metric"], "unit": self.p["unit"]}

    def message(self, value: float | None) -> str:
        shown = "n/a" if value is None else f"{value:.4g}{self.p['unit']}"
        rel = ">=" if self.direction == "above" else "<="
        return f"{self.p['metric']} {shown} ({rel} {self.raise_at:g}{self.p['unit']})"


class ThresholdAbove(_MetricThreshold):
    type_name = "threshold_above"
    direction = "above"


class ThresholdBelow(_MetricThreshold):
    type_name = "threshold_below"
    direction = "below"


BUILTIN: Final[dict[str, type[Rule]]] = {
    cls.type_name: cls
    for cls in (
        DefectRate,
        ConsecutiveFails,
        ConfidenceDrift,
        InferenceP95,
        StationSilent,
        BatteryLow,
        SafetyStop,
        LocalizationLow,
        Stalled,
        AgvError,
        ConnectionLost,
        RsrpLow,
        SinrLow,
        LatencyP99,
        LossHigh,
        CellChanges,
        ThresholdAbove,
        ThresholdBelow,
    )
}
