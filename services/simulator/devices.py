"""Simulated devices: each produces realistic records of its stream, with fault episodes.

The models are small but shaped like the real thing, so that rules, KPIs and dashboards
have something meaningful to show: a vision station's defect rate sits near 2 % until a
tool wears (a defect spike); AGVs drive loops, drain and recharge, and sometimes stop on
an e-stop, lose localisation or stall; 5G modules hover around -90 dBm with 8-12 ms
latency until interference degrades the link.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

DEFECT_TYPES = ("scratch", "dent", "missing_screw", "misalignment", "stain", "crack")
SLICES = ("URLLC", "eMBB")


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

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        self.part_no += 1
        faulty = self.maybe_fault(fault_probability, (40, 150))
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
    cell: int = 1

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        faulty = self.maybe_fault(fault_probability, (20, 80))
        rsrp = self.rng.gauss(-125 if faulty else -90, 3)
        sinr = self.rng.gauss(-3 if faulty else 15, 2)
        latency = max(1.0, self.rng.gauss(45 if faulty else 9, 2 if not faulty else 10))
        if self.rng.random() < (0.05 if faulty else 0.001):
            self.cell = self.cell % 3 + 1
        return {
            "ts": now_ms(),
            "seq": self.seq,
            "rsrp": round(min(-31.0, max(-156.0, rsrp)), 1),
            "sinr": round(min(40.0, max(-23.0, sinr)), 1),
            "latency_ms": round(latency, 2),
            "rsrq": round(min(20.0, max(-43.0, self.rng.gauss(-16 if faulty else -10, 1))), 1),
            "jitter_ms": round(abs(self.rng.gauss(6 if faulty else 1, 0.5)), 2),
            "loss_pct": round(abs(self.rng.gauss(2.5 if faulty else 0.01, 0.01)), 3),
            "ul_mbps": round(abs(self.rng.gauss(20 if faulty else 85, 5)), 1),
            "dl_mbps": round(abs(self.rng.gauss(90 if faulty else 420, 20)), 1),
            "cell_id": f"460-00-{self.cell:07d}",
            "slice": SLICES[hash(self.device_id) % 2],
        }


@dataclass
class Machine(SimDevice):
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
            },
        }
