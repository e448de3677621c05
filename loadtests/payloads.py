"""Realistic device payloads, fast enough to publish tens of thousands per second.

Each record's `ts` is its publish time in epoch milliseconds and its `seq` counts per
device from 1, so the store itself tells when (ts) and which (seq) message arrived: the
observer needs no side channel to measure publish-to-commit latency or to find losses.
Values vary from message to message (a pool of pre-rendered record bodies per stream) so
that the database does not see one repeated row, while formatting stays a bytes `%`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import orjson

from services.core.streams import STREAM_DEFS

# Table written for each native stream (and protocol), and rows one record becomes there.
STREAM_TABLE: Final = {
    **{name: d.table for name, d in STREAM_DEFS.items()},
    "vda5050": STREAM_DEFS["agv"].table,
    "sparkplug": STREAM_DEFS["telemetry"].table,
}
TELEMETRY_METRICS: Final = 4
SPARKPLUG_METRICS: Final = 20
ROWS_PER_RECORD: Final = {
    "link": 1,
    "agv": 1,
    "inspection": 1,
    "telemetry": TELEMETRY_METRICS,
    "vda5050": 1,
    "sparkplug": SPARKPLUG_METRICS,
}
# Streams whose stored seq is the generator's per-device seq (1, 2, ...): audited by seq.
# Sparkplug's seq is per edge node and wraps at 256, so it is audited by row counts.
SEQ_AUDITED: Final = frozenset({"link", "agv", "inspection", "telemetry", "vda5050"})
KIND_OF_STREAM: Final = {
    "link": "module",
    "agv": "agv",
    "inspection": "station",
    "telemetry": "machine",
}
POOL: Final = 64


class PayloadUnavailableError(RuntimeError):
    """A payload format whose encoder is not part of this checkout."""


def _typical(rng: random.Random, device: str, typical: object) -> object:
    """One value a healthy device sends, from its field's `typical` (services/core/contracts.py):
    (low, high, decimals) for a number, choices for text (`{device}`, `{n}` filled in)."""
    if isinstance(typical, tuple) and len(typical) == 3 and isinstance(typical[2], int):
        low, high, decimals = typical
        value = round(rng.uniform(low, high), decimals)
        return int(value) if decimals == 0 else value
    if isinstance(typical, tuple):
        return str(rng.choice(typical)).format(device=device, n=rng.randint(0, 9_999_999))
    return typical  # a literal value, e.g. an empty list


def _body(stream: str) -> Callable[[random.Random, str], dict[str, object]]:
    """A record body of `stream` with every field its definition gives a typical value for."""
    fields = [f for f in STREAM_DEFS[stream].fields if f.typical is not None]

    def body(rng: random.Random, device: str) -> dict[str, object]:
        return {f.name: _typical(rng, device, f.typical) for f in fields}

    return body


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
    "link": _body("link"),
    "agv": _body("agv"),
    "inspection": _body("inspection"),
    # Metric names are the machine's, not fields of the contract.
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


class DeviceFormat(Protocol):
    """How one publisher process's devices speak: topics, payloads, and what gets stored."""

    topics: list[str]

    def births(self) -> list[tuple[str, bytes]]: ...

    def render(self, device: int, seq: int, ts_ms: int) -> bytes: ...


class NativeFormat:
    """The native JSON contract: `f5g/v1/{project}/{kind}/{device}/{stream}`."""

    def __init__(self, stream: str, project: str, names: list[str], batch: int, seed: int) -> None:
        self.makers = [PayloadMaker(stream, d, batch, seed) for d in names]
        self.topics = [topic(project, stream, d) for d in names]

    def births(self) -> list[tuple[str, bytes]]:
        return []

    def render(self, device: int, seq: int, ts_ms: int) -> bytes:
        return self.makers[device].render(seq, ts_ms)


VDA_INTERFACE: Final = "uagv"
VDA_MANUFACTURER: Final = "Bench"


class Vda5050Format:
    """VDA 5050 v2 `state` messages; `headerId` is the per-AGV seq, `timestamp` the
    publish time, which is what the adapter stores as seq and ts."""

    def __init__(self, names: list[str], seed: int) -> None:
        self.topics = [f"{VDA_INTERFACE}/v2/{VDA_MANUFACTURER}/{d}/state" for d in names]
        rng = random.Random(seed)
        self._templates = []
        for d in names:
            body = orjson.dumps(
                {
                    "version": "2.0.0",
                    "manufacturer": VDA_MANUFACTURER,
                    "serialNumber": d,
                    "orderId": f"order-{rng.randint(0, 999)}",
                    "orderUpdateId": 0,
                    "lastNodeId": "n3",
                    "lastNodeSequenceId": 3,
                    "nodeStates": [],
                    "edgeStates": [],
                    "driving": True,
                    "operatingMode": "AUTOMATIC",
                    "agvPosition": {
                        "x": round(rng.uniform(0, 40), 3),
                        "y": round(rng.uniform(0, 30), 3),
                        "theta": round(rng.uniform(-3.14, 3.14), 3),
                        "mapId": "hall-1",
                        "positionInitialized": True,
                        "localizationScore": 0.97,
                    },
                    "velocity": {"vx": 1.2, "vy": 0.0, "omega": 0.1},
                    "actionStates": [],
                    "batteryState": {
                        "batteryCharge": round(rng.uniform(30, 100), 1),
                        "charging": False,
                    },
                    "errors": [],
                    "safetyState": {"eStop": "NONE", "fieldViolation": False},
                }
            )
            self._templates.append(b'{"headerId":%d,"timestamp":"%s",' + body[1:])

    def births(self) -> list[tuple[str, bytes]]:
        return []

    def render(self, device: int, seq: int, ts_ms: int) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000))
        return self._templates[device] % (seq, f"{stamp}.{ts_ms % 1000:03d}Z".encode())


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class SparkplugFormat:
    """One Sparkplug B edge node per publisher process, its devices sending aliased DDATA
    of `SPARKPLUG_METRICS` doubles after NBIRTH/DBIRTH. The node's seq (0-255) is kept
    here; the per-device seq the publisher passes in is not part of the protocol."""

    def __init__(self, project: str, node: str, names: list[str], metrics: int) -> None:
        from services.protocols import sparkplug as spb

        self.spb = spb
        self.project, self.node, self.names, self.metrics = project, node, names, metrics
        self.topics = [f"{spb.NAMESPACE}/{project}/DDATA/{node}/{d}" for d in names]
        self.seq = 0
        self._step = 0
        self._bodies: list[bytes] = []
        for k in range(POOL):
            p = spb.Payload()
            for alias in range(metrics):
                p.metrics.add(alias=alias, double_value=50.0 + k + alias * 0.5)
            self._bodies.append(bytes(p.SerializeToString()))

    def _next_seq(self) -> int:
        current = self.seq
        self.seq = (self.seq + 1) % self.spb.SEQ_MODULO
        return current

    def births(self) -> list[tuple[str, bytes]]:
        spb = self.spb
        self.seq = 0
        now = int(time.time() * 1000) - 60_000  # before the run, so counts can tell births
        nb = spb.Payload(timestamp=now, seq=self._next_seq())
        nb.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
        out = [(f"{spb.NAMESPACE}/{self.project}/NBIRTH/{self.node}", nb.SerializeToString())]
        for d in self.names:
            db = spb.Payload(timestamp=now, seq=self._next_seq())
            for alias in range(self.metrics):
                db.metrics.add(
                    name=f"Axis {alias}/Load".encode(),
                    alias=alias,
                    datatype=spb.DataType.Double,
                    double_value=0.0,
                )
            out.append(
                (f"{spb.NAMESPACE}/{self.project}/DBIRTH/{self.node}/{d}", db.SerializeToString())
            )
        return out

    def render(self, device: int, seq: int, ts_ms: int) -> bytes:
        # Protobuf fields may come in any order and concatenate, so a payload is the
        # timestamp (field 1), pre-serialised metrics (field 2) and seq (field 3): building
        # a message object per publish would make the generator the bottleneck.
        self._step += 1
        body = self._bodies[self._step % len(self._bodies)]
        return b"\x08" + _varint(ts_ms) + body + b"\x18" + _varint(self._next_seq())


def make_format(
    stream: str, project: str, index: int, names: list[str], batch: int, seed: int
) -> DeviceFormat:
    if stream == "vda5050":
        return Vda5050Format(names, seed)
    if stream == "sparkplug":
        return SparkplugFormat(project, f"n{index:02d}", names, SPARKPLUG_METRICS)
    return NativeFormat(stream, project, names, batch, seed)


def stored_device(stream: str, index: int, name: str) -> str:
    """The device id the platform stores a generator device under."""
    if stream == "vda5050":
        return f"{VDA_MANUFACTURER}.{name}"
    if stream == "sparkplug":
        return f"n{index:02d}.{name}"
    return name
