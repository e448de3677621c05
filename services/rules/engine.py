"""The evaluation engine: records in, alarm transitions out, no I/O.

The engine keeps one small state per (device, rule) and turns the levels rules report into
the alarm lifecycle: an alarm opens once the raise condition has held for `for`, repeats
update it (at most every `update_interval` of device time, so a persistent fault does not
write a row per record), it escalates once when the condition worsens past `escalate.at`,
and it clears once the clear condition has held for `clear_for`, or after `quiet_clear`
without the raise condition. The hysteresis band between raise and clear is what stops an
alarm flapping around one threshold.

Windows and durations use the records' device time, so replaying stored history gives
what live evaluation gave. Only absences (a silent device) need a clock: `tick(now)` is
driven by wall time live and by the records' time in replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.core.contracts import Decoded, Topic
from services.rules.builtin import (
    CLEAR,
    ESCALATE,
    HOLD,
    SEVERITIES,
    SKIP,
    ConnectionLost,
    Rule,
)
from services.rules.config import RuleSet

OPENED = "opened"
UPDATED = "updated"
ESCALATED = "escalated"
CLEARED = "cleared"


@dataclass(slots=True)
class Transition:
    """One alarm state change, with the evidence that caused it."""

    transition: str
    project: str
    kind: str
    device: str
    rule: str
    rule_type: str
    severity: str
    at: float  # device time (epoch seconds) of the record or tick that caused it
    opened_at: float
    value: float | None
    count: int
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    received_at: float | None = None  # when the triggering message arrived, for latency


class Slot:
    """One rule on one device: the rule's own state plus the alarm lifecycle."""

    __slots__ = (
        "active",
        "clear_since",
        "count",
        "last_bad",
        "last_emit",
        "opened_at",
        "pending_since",
        "rule",
        "severity",
        "state",
    )

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.state: Any = rule.new_state()
        self.active = False
        self.severity = ""
        self.pending_since: float | None = None
        self.clear_since: float | None = None
        self.last_bad = 0.0
        self.last_emit = 0.0
        self.opened_at = 0.0
        self.count = 0


class Device:
    __slots__ = ("by_stream", "device", "kind", "last_seen", "line", "project", "slots", "timed")

    def __init__(self, project: str, kind: str, device: str, line: str) -> None:
        self.project = project
        self.kind = kind
        self.device = device
        self.line = line
        self.last_seen: float | None = None
        self.slots: dict[str, Slot] = {}
        self.by_stream: dict[str, list[Slot]] = {}
        self.timed: list[Slot] = []

    def index(self) -> None:
        self.by_stream = {}
        for slot in self.slots.values():
            self.by_stream.setdefault(slot.rule.stream, []).append(slot)
        self.timed = [s for s in self.slots.values() if s.rule.timed]


class Engine:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.devices: dict[tuple[str, str], Device] = {}
        # (project, line, kind) -> {device: last seen}; a line's devices are few, scans are
        # cheap. The kind is part of the key because only stations of the same kind tell
        # whether a line runs: a 5G CPE or an AGV keeps reporting through a break or a
        # shift end, and counting it would page the plant for every stopped station.
        self._lines: dict[tuple[str, str, str], dict[str, float]] = {}
        self.events = 0
        # (project, device) -> the profiles an admin registered it with: the rule sets
        # (rule file kinds) it takes part in. Without profiles the topic's kind decides.
        self.profiles: dict[tuple[str, str], tuple[str, ...]] = {}

    def rules_of(self, project: str, kind: str, device: str) -> list[Rule]:
        """The device's rules: those of each of its profiles (the first profile naming a
        rule wins), or of its topic's kind when it has none."""
        kinds = self.profiles.get((project, device)) or (kind,)
        if len(kinds) == 1:
            return self.ruleset.rules_for(project, kinds[0], device)
        found: dict[str, Rule] = {}
        for k in kinds:
            for rule in self.ruleset.rules_for(project, k, device):
                found.setdefault(rule.name, rule)
        return list(found.values())

    # ----------------------------------------------------------------- inputs

    def device(self, project: str, kind: str, device: str) -> Device:
        dev = self.devices.get((project, device))
        if dev is None:
            dev = Device(project, kind, device, self.ruleset.line_of(project, device))
            for rule in self.rules_of(project, kind, device):
                dev.slots[rule.name] = Slot(rule)
            dev.index()
            self.devices[(project, device)] = dev
        return dev

    def process(
        self, topic: Topic, decoded: Decoded, seen_at: float, received_at: float | None = None
    ) -> list[Transition]:
        """Evaluate a decoded message; `seen_at` is arrival time live, record time in replay."""
        dev = self.device(topic.project, topic.kind, topic.device)
        self.touch(dev, seen_at)
        slots = dev.by_stream.get(topic.stream)
        out: list[Transition] = []
        n = len(decoded.records)
        self.events += n
        if not slots:
            return out
        step = self._step
        for rec, ts in zip(decoded.records, decoded.times, strict=True):
            t = ts.timestamp()
            for slot in slots:
                level = slot.rule.evaluate(slot.state, rec, t)
                if level != SKIP:
                    step(dev, slot, level, t, out)
        if received_at is not None:
            for tr in out:
                tr.received_at = received_at
        return out

    def touch(self, dev: Device, seen_at: float) -> None:
        if dev.last_seen is None or seen_at > dev.last_seen:
            dev.last_seen = seen_at
        key = (dev.project, dev.line, dev.kind)
        members = self._lines.get(key)
        if members is None:
            members = self._lines[key] = {}
        if seen_at > members.get(dev.device, 0.0):
            members[dev.device] = seen_at

    def seen_elsewhere(self, project: str, kind: str, device: str, seen_at: float) -> None:
        """A device owned by another replica was active: keeps line activity complete."""
        line = self.ruleset.line_of(project, device)
        members = self._lines.setdefault((project, line, kind), {})
        if seen_at > members.get(device, 0.0):
            members[device] = seen_at

    def line_last_seen(self, project: str, line: str, excluding: str) -> float | None:
        """Latest activity of the other devices of `excluding`'s kind on its line."""
        dev = self.devices.get((project, excluding))
        if dev is None:
            return None
        members = self._lines.get((project, line, dev.kind))
        if not members:
            return None
        best: float | None = None
        for device, seen in members.items():
            if device != excluding and (best is None or seen > best):
                best = seen
        return best

    def connection(
        self, project: str, kind: str, device: str, online: bool, at: float
    ) -> list[Transition]:
        """A device online/offline event from an adapter (MQTT will, VDA 5050 connection)."""
        dev = self.device(project, kind, device)
        out: list[Transition] = []
        for slot in dev.slots.values():
            if isinstance(slot.rule, ConnectionLost):
                slot.state.offline = not online
                if online:
                    slot.state.silent = 0.0
                    self._step(dev, slot, CLEAR, at, out)
                else:
                    if dev.last_seen is None:
                        dev.last_seen = at
                    level = slot.rule.check(slot.state, at, dev, self)
                    self._step(dev, slot, level, at, out)
        return out

    def tick(self, now: float) -> list[Transition]:
        """Absence rules and quiet clears; call about once a second."""
        out: list[Transition] = []
        for dev in self.devices.values():
            for slot in dev.timed:
                level = slot.rule.check(slot.state, now, dev, self)
                if level != SKIP:
                    self._step(dev, slot, level, now, out)
            for slot in dev.slots.values():
                if slot.active and now - slot.last_bad >= slot.rule.cfg.quiet_clear_s:
                    self._emit(dev, slot, CLEARED, now, out, reason="quiet")
                    self._reset(slot)
        return out

    # ----------------------------------------------------------------- lifecycle

    def _step(self, dev: Device, slot: Slot, level: int, t: float, out: list[Transition]) -> None:
        if level > HOLD:
            slot.clear_since = None
            slot.last_bad = t
            cfg = slot.rule.cfg
            if not slot.active:
                if slot.pending_since is None:
                    slot.pending_since = t
                if t - slot.pending_since >= cfg.for_s:
                    slot.active = True
                    slot.opened_at = t
                    slot.count = 1
                    slot.severity = (
                        cfg.escalate_severity
                        if level == ESCALATE and cfg.escalate_severity
                        else cfg.severity
                    )
                    self._emit(dev, slot, OPENED, t, out)
                return
            slot.count += 1
            if (
                level == ESCALATE
                and cfg.escalate_severity
                and _rank(cfg.escalate_severity) > _rank(slot.severity)
            ):
                slot.severity = cfg.escalate_severity
                self._emit(dev, slot, ESCALATED, t, out)
            elif t - slot.last_emit >= self.ruleset.update_interval_s:
                self._emit(dev, slot, UPDATED, t, out)
        elif level == HOLD:
            slot.pending_since = None
            slot.clear_since = None
        else:
            slot.pending_since = None
            if slot.active:
                if slot.clear_since is None:
                    slot.clear_since = t
                if t - slot.clear_since >= slot.rule.cfg.clear_for_s:
                    self._emit(dev, slot, CLEARED, t, out)
                    self._reset(slot)

    @staticmethod
    def _reset(slot: Slot) -> None:
        slot.active = False
        slot.clear_since = None
        slot.pending_since = None
        slot.count = 0
        slot.severity = ""

    def _emit(
        self,
        dev: Device,
        slot: Slot,
        transition: str,
        t: float,
        out: list[Transition],
        reason: str | None = None,
    ) -> None:
        rule = slot.rule
        value = rule.value(slot.state)
        evidence: dict[str, Any] = {
            **rule.evidence(slot.state),
            "value": value,
            "thresholds": rule.thresholds(),
            "text": {**rule.text_facts(slot.state), "value": value},
        }
        if reason:
            evidence["reason"] = reason
        slot.last_emit = t
        out.append(
            Transition(
                transition=transition,
                project=dev.project,
                kind=dev.kind,
                device=dev.device,
                rule=rule.name,
                rule_type=rule.cfg.type,
                severity=slot.severity or rule.cfg.severity,
                at=t,
                opened_at=slot.opened_at,
                value=value,
                count=slot.count,
                message=rule.message(value),
                evidence=evidence,
            )
        )

    # ----------------------------------------------------------------- state management

    def restore(
        self,
        project: str,
        kind: str,
        device: str,
        rule: str,
        severity: str,
        opened_at: float,
        count: int,
        now: float,
    ) -> bool:
        """Adopt an alarm left open by a previous run, so it can be updated and cleared."""
        dev = self.device(project, kind, device)
        slot = dev.slots.get(rule)
        if slot is None:
            return False
        slot.active = True
        slot.severity = severity
        slot.opened_at = opened_at
        slot.count = count
        slot.last_bad = now
        slot.last_emit = now
        return True

    def reload(self, ruleset: RuleSet, now: float) -> list[Transition]:
        """Swap rule sets; unchanged rules keep their state, removed ones clear their alarms."""
        self.ruleset = ruleset
        out: list[Transition] = []
        for dev in self.devices.values():
            new_rules = {r.name: r for r in self.rules_of(dev.project, dev.kind, dev.device)}
            dev.line = ruleset.line_of(dev.project, dev.device)
            slots: dict[str, Slot] = {}
            for name, old in dev.slots.items():
                rule = new_rules.get(name)
                if rule is None:
                    if old.active:
                        self._emit(dev, old, CLEARED, now, out, reason="rule removed")
                    continue
                if rule.cfg.key() == old.rule.cfg.key():
                    old.rule = rule
                    slots[name] = old
                else:
                    fresh = Slot(rule)
                    for attr in ("active", "severity", "opened_at", "count", "last_bad"):
                        setattr(fresh, attr, getattr(old, attr))
                    fresh.last_emit = old.last_emit
                    slots[name] = fresh
            for name, rule in new_rules.items():
                if name not in slots:
                    slots[name] = Slot(rule)
            dev.slots = slots
            dev.index()
        self._lines = {}
        for dev in self.devices.values():
            if dev.last_seen is not None:
                key = (dev.project, dev.line, dev.kind)
                self._lines.setdefault(key, {})[dev.device] = dev.last_seen
        return out

    def active(self) -> Iterable[tuple[Device, Slot]]:
        for dev in self.devices.values():
            for slot in dev.slots.values():
                if slot.active:
                    yield dev, slot


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1
