"""Realistic device payloads, fast enough to publish tens of thousands per second.

Each record's `ts` is its publish time in epoch milliseconds and its `seq` counts per
device from 1, so the store itself tells when (ts) and which (seq) message arrived: the
observer needs no side channel to measure publish-to-commit latency or to find losses.
Values vary from message to message (a pool of pre-rendered record bodies per stream) so
that the database does not see one repeated row, while formatting stays a bytes `%`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

# Table written for each native stream, and rows one record becomes there.
STREAM_TABLE: Final = {
    "link": "link_kpis",
    "agv": "agv_status",
    "inspection": "inspections",
    "telemetry": "telemetry",
}
TELEMETRY_METRICS: Final = 4
ROWS_PER_RECORD: Final = {"link": 1, "agv": 1, "inspection": 1, "telemetry": TELEMETRY_METRICS}
KIND_OF_STREAM: Final = {
    "link": "module",
    "agv": "agv",
    "inspection": "station",
    "telemetry": "machine",
}
POOL: Final = 64


class PayloadUnavailableError(RuntimeError):
    """A payload format whose encoder is not part of this checkout."""


def _link(rng: random.Random, device: str) -> dict[str, object]:
    return {
        "rsrp": round(rng.gauss(-90, 3), 1),
        "sinr": round(rng.gauss(15, 2), 1),
        "latency_ms": round(max(1.0, rng.gauss(9, 2)), 2),
        "rsrq": round(rng.gauss(-10, 1), 1),
        "jitter_ms": round(abs(rng.gauss(1, 0.5)), 2),
        "loss_pct": round(abs(rng.gauss(0.01, 0.01)), 3),
        "ul_mbps": round(abs(rng.gauss(85, 5)), 1),
        "dl_mbps": round(abs(rng.gauss(420, 20)), 1),
        "cell_id": f"460-00-{rng.randint(1, 3):07d}",
        "slice": "URLLC",
    }


def _agv(rng: random.Random, device: str) -> dict[str, object]:
    return {
        "x": round(rng.uniform(-20, 20), 3),
        "y": round(rng.uniform(-20, 20), 3),
        "heading": round(rng.uniform(0, 360), 2),
        "speed": round(rng.uniform(1.1, 1.3), 3),
        "battery": round(rng.uniform(20, 100), 2),
        "state": "moving",
        "localization": round(rng.uniform(0.9, 1.0), 3),
        "task_id": f"T-{rng.randint(0, 99999):05d}",
    }


def _inspection(rng: random.Random, device: str) -> dict[str, object]:
    defect = rng.random() < 0.02
    return {
        "station": device,
        "part_id": f"P-{device}-{rng.randint(0, 9_999_999):07d}",
        "result": "fail" if defect else "pass",
        "defects": [{"type": "scratch", "confidence": 0.91}] if defect else [],
        "confidence": round(rng.uniform(0.93, 0.999), 4),
        "inference_ms": round(rng.gauss(24, 3), 2),
        "model": "defect-yolo-v5.2",
    }


def _telemetry(rng: random.Random, device: str) -> dict[str, object]:
    return {
        "metrics": {
            "spindle_rpm": round(rng.gauss(12000, 50)),
            "spindle_temp_c": round(rng.gauss(42, 0.8), 2),
            "vibration_mm_s": round(abs(rng.gauss(1.8, 0.2)), 3),
            "power_kw": round(rng.gauss(11, 0.4), 2),
        }
    }


_BODIES: Final[dict[str, Callable[[random.Random, str], dict[str, object]]]] = {
    "link": _link,
    "agv": _agv,
    "inspection": _inspection,
    "telemetry": _telemetry,
}
STREAMS: Final = tuple(_BODIES)


@dataclass
class PayloadMaker:
    """Renders the payload of one message: `batch` records (1 = a bare object, not a list)."""

    stream: str
    device: str
    batch: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stream not in _BODIES:
            raise PayloadUnavailableError(
                f"stream {self.stream!r} has no generator; use one of {', '.join(STREAMS)}"
            )
        rng = random.Random(f"{self.seed}/{self.device}")
        body = _BODIES[self.stream]
        # '{"ts":%d,"seq":%d,' + rest of the object: the rest is pre-rendered JSON.
        self._templates = [
            b'{"ts":%d,"seq":%d,' + orjson.dumps(body(rng, self.device))[1:] for _ in range(POOL)
        ]
        self._i = 0

    def render(self, first_seq: int, ts_ms: int) -> bytes:
        """Payload whose records carry seq first_seq .. first_seq + batch - 1."""
        templates, n = self._templates, len(self._templates)
        if self.batch == 1:
            self._i = (self._i + 1) % n
            return templates[self._i] % (ts_ms, first_seq)
        parts = []
        for k in range(self.batch):
            self._i = (self._i + 1) % n
            parts.append(templates[self._i] % (ts_ms, first_seq + k))
        return b"[" + b",".join(parts) + b"]"


def topic(project: str, stream: str, device: str) -> str:
    return f"f5g/v1/{project}/{KIND_OF_STREAM[stream]}/{device}/{stream}"


def protocol_encoder(fmt: str) -> Callable[..., bytes]:
    """The Sparkplug B / VDA 5050 encoder of the protocols package, when it is present."""
    import importlib

    candidates = {
        "sparkplug": ("services.simulator.protocols", "services.protocols.sparkplug"),
        "vda5050": ("services.simulator.protocols", "services.protocols.vda5050"),
    }
    if fmt not in candidates:
        raise PayloadUnavailableError(f"unknown payload format {fmt!r}")
    for name in candidates[fmt]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr in (f"encode_{fmt}", "encode"):
            fn = getattr(module, attr, None)
            if callable(fn):
                return fn  # type: ignore[no-any-return]
    raise PayloadUnavailableError(
        f"no {fmt} encoder in this checkout (looked in {', '.join(candidates[fmt])})"
    )
