"""Simulated devices: each produces realistic records of its stream, with fault episodes.

The models are small but shaped like the real thing, so that rules, KPIs and dashboards
have something meaningful to show: a vision station's defect rate sits near 2 % until a
tool wears or the 5G module carrying it suffers interference (a defect spike); AGVs drive
loops, drain and recharge, and sometimes stop on an e-stop, lose localisation or stall; 5G
modules hover around -90 dBm with 8-12 ms latency until interference degrades the link.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from services.core.streams import STREAM_DEFS

DEFECT_TYPES = ("scratch", "dent", "missing_screw", "misalignment", "stain", "crack")
LINK_FIELDS = STREAM_DEFS["link"].fields


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SimDevice:
    project: str
    kind: str
    device_id: str
    stream: str
    rng: random.Random
    seq: int = 0
    fault_left: int = 0  # messages remaining in the current fault episode

    @property
    def topic(self) -> str:
        return f"f5g/v1/{self.project}/{self.kind}/{self.device_id}/{self.stream}"

    def maybe_fault(self, probability: float, length: tuple[int, int]) -> bool:
        if self.fault_left > 0:
            self.fault_left -= 1
            return True
        if self.rng.random() < probability:
            self.fault_left = self.rng.randint(*length)
            return True
        return False

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class VisionStation(SimDevice):
    part_no: int = 0
    base_defect_rate: float = 0.02
    # The 5G module carrying this station's images: while its link is degraded the
    # station's results suffer too (an interference episode, see `pair_stations`).
    module: FiveGModule | None = None

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        self.part_no += 1
        faulty = self.maybe_fault(fault_probability, (40, 150))
        if self.module is not None and self.module.interfered:
            faulty = True
        rate = 0.35 if faulty else self.base_defect_rate
        defects: list[dict[str, Any]] = []
        if self.rng.random() < rate:
            for _ in range(self.rng.choice((1, 1, 1, 2))):
                defects.append(
                    {
                        "type": self.rng.choice(DEFECT_TYPES[:3] if faulty else DEFECT_TYPES),
                        "confidence": round(self.rng.uniform(0.6, 0.99), 3),
                    }
                )
        conf: float = (
            max(float(d["confidence"]) for d in defects)
            if defects
            else self.rng.uniform(0.93, 0.999)
        )
        return {
            "ts": now_ms(),
            "seq": self.seq,
            "station": self.device_id,
            "part_id": f"{self.project[:6].upper()}-{self.device_id}-{self.part_no:07d}",
            "result": "fail" if defects else "pass",
            "defects": defects,
            "confidence": round(conf, 4),
            "inference_ms": round(self.rng.gauss(24, 3) * (1.8 if faulty else 1.0), 2),
            "model": "defect-yolo-v5.2",
        }


@dataclass
class Agv(SimDevice):
    angle: float = 0.0
    battery: float = field(default=90.0)
    charging: bool = False
    radius: float = 20.0

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        faulty = self.maybe_fault(fault_probability, (10, 40))
        fault_kind = self.rng.randrange(3) if faulty and self.fault_left % 40 == 0 else None
        state = "moving"
        speed = 1.2 + self.rng.uniform(-0.1, 0.1)
        loc = min(1.0, self.rng.uniform(0.9, 1.0))
        error_code = None
        if self.charging:
            state, speed = "charging", 0.0
            self.battery = min(100.0, self.battery + 0.5)
            if self.battery >= 98:
                self.charging = False
        elif self.battery < 20:
            self.charging = True
        elif faulty:
            kind = fault_kind if fault_kind is not None else (self.seq // 7) % 3
            if kind == 0:
                state, speed = "estop", 0.0
            elif kind == 1:
                loc = self.rng.uniform(0.1, 0.4)
                speed = 0.2
            else:
                state, speed, error_code = "error", 0.0, "E-DRIVE-12"
        if state == "moving":
            self.angle += speed / self.radius
            self.battery = max(0.0, self.battery - 0.05)
        return {
            "ts": now_ms(),
            "seq": self.seq,
            "x": round(self.radius * math.cos(self.angle), 3),
            "y": round(self.radius * math.sin(self.angle), 3),
            "heading": round(math.degrees(self.angle + math.pi / 2) % 360, 2),
            "speed": round(max(0.0, speed), 3),
            "battery": round(self.battery, 2),
            "state": state,
            "localization": round(loc, 3),
            **({"task_id": f"T-{self.seq // 100:05d}"} if state == "moving" else {}),
            **({"error_code": error_code} if error_code else {}),
        }


@dataclass
class FiveGModule(SimDevice):
    """Reports every field of the `link` stream its definition gives values for
    (`services.core.contracts.LinkKpi`): `typical` ranges while healthy, `degraded` ones
    during an interference episode. Text fields (cell, slice) stick to one value and change
    rarely, a handover, fifty times as often while degraded."""

    sticky: dict[str, str] = field(default_factory=dict)
    # Episode length in messages; a module that carries a station has longer ones, long
    # enough for both the link rules and the station's defect-rate window to notice.
    episode: tuple[int, int] = (20, 80)

    @property
    def interfered(self) -> bool:
        return self.fault_left > 0

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        faulty = self.maybe_fault(fault_probability, self.episode)
        record: dict[str, Any] = {"ts": now_ms(), "seq": self.seq}
        for f in LINK_FIELDS:
            spec = f.degraded if faulty and f.degraded is not None else f.typical
            if isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[2], int):
                low, high, decimals = spec
                record[f.name] = round(self.rng.uniform(low, high), decimals)
            elif isinstance(spec, tuple):
                current = self.sticky.get(f.name)
                if current is None or self.rng.random() < (0.05 if faulty else 0.001):
                    current = self.sticky[f.name] = str(self.rng.choice(spec))
                record[f.name] = current
        return record


INTERFERENCE_EPISODE = (120, 300)


def pair_stations(fleet: list[SimDevice]) -> list[tuple[str, str, str]]:
    """Station st-NN of a project is carried by module cpe-NN: its defect spike follows the
    module's interference episodes (so the dashboard shows "network suspected"). Returns
    (project, module, station) for the registry's `module_of`."""
    modules = {
        (d.project, d.device_id.removeprefix("cpe-")): d
        for d in fleet
        if isinstance(d, FiveGModule)
    }
    pairs: list[tuple[str, str, str]] = []
    for d in fleet:
        if isinstance(d, VisionStation):
            m = modules.get((d.project, d.device_id.removeprefix("st-")))
            if m is not None:
                d.module = m
                m.episode = INTERFERENCE_EPISODE
                pairs.append((d.project, m.device_id, d.device_id))
    return pairs


# Machine states of the OEE convention (docs/device-guide.md) and what follows each stop.
RUNNING, IDLE, DOWN, PLANNED_STOP, SETUP = 1, 2, 3, 4, 5
_AFTER_RUN = ((DOWN, 0.35, (30, 150)), (IDLE, 0.3, (15, 60)), (SETUP, 0.2, (60, 180)),
              (PLANNED_STOP, 0.15, (60, 120)))  # fmt: skip
SIM_CYCLE_S = 20.0  # the simulated machines' ideal cycle time


@dataclass
class MachineStates:
    """A machine's state, downtime reason and part counters over wall-clock time: runs for
    minutes, then stops (unplanned with a reason code 1-5, idle, setup or a planned stop)
    and runs again; while running it makes a part every cycle, a few of them bad. Its
    controller restarts now and then, which resets the counters."""

    state: int = RUNNING
    reason: int = 0
    until: float = 0.0
    produced: int = 0
    good: int = 0
    next_part: float = 0.0

    def metrics(self, now: float, rng: random.Random) -> dict[str, float]:
        if now >= self.until:
            if self.state == RUNNING and self.until:
                pick, acc = rng.random(), 0.0
                for state, share, (lo, hi) in _AFTER_RUN:
                    acc += share
                    if pick < acc or state == PLANNED_STOP:
                        self.state, self.until = state, now + rng.uniform(lo, hi)
                        break
                self.reason = rng.randint(1, 5) if self.state == DOWN else 0
            else:
                self.state, self.reason = RUNNING, 0
                self.until = now + rng.uniform(180, 600)
                self.next_part = now + SIM_CYCLE_S
        if self.state == RUNNING:
            while now >= self.next_part:
                self.produced += 1
                self.good += rng.random() < 0.97
                self.next_part += SIM_CYCLE_S * rng.uniform(1.0, 1.25)
        if rng.random() < 0.0002:
            self.produced = self.good = 0
        return {
            "state": self.state,
            "reason": self.reason,
            "count.produced": self.produced,
            "count.good": self.good,
        }


@dataclass
class Machine(SimDevice):
    states: MachineStates = field(default_factory=MachineStates)

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        faulty = self.maybe_fault(fault_probability, (20, 60))
        return {
            "ts": now_ms(),
            "seq": self.seq,
            "metrics": {
                "spindle_rpm": round(self.rng.gauss(12000, 50)),
                "spindle_temp_c": round(self.rng.gauss(68 if faulty else 42, 0.8), 2),
                "vibration_mm_s": round(abs(self.rng.gauss(7.5 if faulty else 1.8, 0.2)), 3),
                "power_kw": round(self.rng.gauss(11, 0.4), 2),
                **self.states.metrics(time.time(), self.rng),
            },
        }
