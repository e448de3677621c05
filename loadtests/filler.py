"""A backlog filler that writes pre-encoded QoS 1 PUBLISH packets as fast as the socket takes them.

Why: the drain benchmark (`loadtests/drain.py`) fills a stopped ingestor's persistent session
with hundreds of thousands of messages before it times anything. A paho publisher renders,
encodes and loop()s per message and reaches some 10,000-30,000 msg/s in one process; at that
speed filling 300,000 messages takes longer than draining them. Here every payload is rendered
and every PUBLISH packet encoded before the connection opens, and the send loop only joins
slices of ready bytes, writes them, and counts 4-byte PUBACKs: the broker, not Python, sets
the pace. Several processes (one connection each, a slice of the devices each) fill at once.

The packets are MQTT 3.1.1 (the session that receives them may be v5: the broker re-encodes
per subscriber). Packet ids cycle through 1..65535 with at most `WINDOW` in flight, so no id
is reused while the broker still holds it; Mosquitto acknowledges in receive order.
"""

from __future__ import annotations

import multiprocessing
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from loadtests.mqttbytes import mqtt_string, publish_packet, remaining_length
from loadtests.payloads import make_format
from loadtests.publisher import device_names

WINDOW = 10_000  # PUBLISH packets in flight per connection (ids stay unique below 65,535)
CHUNK = 500  # packets per write


def connect_packet(client_id: str, keepalive_s: int = 60) -> bytes:
    """MQTT 3.1.1 CONNECT with clean session: the filler keeps no state at the broker."""
    body = mqtt_string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s)
    body += mqtt_string(client_id.encode())
    return b"\x10" + remaining_length(len(body)) + body


@dataclass(frozen=True)
class FillSlice:
    """What one filler process sends: `messages` over `devices` devices, round robin."""

    index: int
    host: str
    port: int
    stream: str
    project: str
    devices: int
    messages: int
    batch: int = 1
    run_id: str = "fill"


@dataclass
class FillResult:
    index: int
    devices: list[str]
    last_seq: list[int]  # highest record seq per device
    messages: int = 0  # PUBLISH packets written, births included
    acked: int = 0
    births: int = 0
    render_s: float = 0.0
    send_s: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def render_slice(s: FillSlice, ts_ms: int) -> tuple[list[str], list[tuple[int, bytes]], list[int]]:
    """Slice `s`'s device names, its messages after the births in sending order as
    (device index, payload), and the highest record seq per device."""
    names = device_names(s.index, s.devices)
    fmt = make_format(s.stream, s.project, s.index, names, s.batch, 0)
    next_seq = [1] * s.devices
    out: list[tuple[int, bytes]] = []
    for i in range(s.messages):
        d = i % s.devices
        out.append((d, fmt.render(d, next_seq[d], ts_ms)))
        next_seq[d] += s.batch
    return names, out, [n - 1 for n in next_seq]


def encode_slice(s: FillSlice) -> tuple[list[bytes], FillResult]:
    """Every packet of slice `s`, births first, and what they carry."""
    names = device_names(s.index, s.devices)
    fmt = make_format(s.stream, s.project, s.index, names, s.batch, 0)
    packets: list[bytes] = []
    mid = 0

    def next_mid() -> int:
        nonlocal mid
        mid = mid % 65535 + 1
        return mid

    for birth_topic, birth in fmt.births():
        packets.append(publish_packet(birth_topic, birth, next_mid()))
    births = len(packets)
    _, messages, last_seq = render_slice(s, int(time.time() * 1000))
    topics = fmt.topics
    for d, payload in messages:
        packets.append(publish_packet(topics[d], payload, next_mid()))
    return packets, FillResult(s.index, names, last_seq, births=births)


def send_all(host: str, port: int, client_id: str, packets: list[bytes]) -> int:
    """Write `packets` on one connection with at most WINDOW unacknowledged; returns the
    PUBACKs received (all of them, or the call raises)."""
    sock = socket.create_connection((host, port), timeout=30)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(client_id))
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                raise ConnectionError("broker closed the connection before CONNACK")
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack!r}")
        total = len(packets)
        sent = received = 0
        while received < total * 4:
            acked = received // 4
            if sent < total and sent - acked < WINDOW:
                k = min(CHUNK, total - sent, WINDOW - (sent - acked))
                sock.sendall(b"".join(packets[sent : sent + k]))
                sent += k
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:
                    continue
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError(f"broker closed the connection after {acked} PUBACKs")
            received += len(data)  # PUBACK in 3.1.1: 0x40 0x02 id id, nothing else arrives
        sock.sendall(b"\xe0\x00")  # DISCONNECT
        return received // 4
    finally:
        sock.close()


def fill_slice(s: FillSlice) -> FillResult:
    """Process entry point: encode everything, then send it."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    try:
        packets, result = encode_slice(s)
    except Exception as exc:
        return FillResult(s.index, [], [], error=f"{type(exc).__name__}: {exc}")
    t1 = time.perf_counter()
    try:
        result.acked = send_all(s.host, s.port, f"{s.run_id}-fill-{s.index}", packets)
    except Exception as exc:  # reported to the parent, which fails the run loudly
        result.error = f"{type(exc).__name__}: {exc}"
    result.messages = len(packets)
    result.render_s = t1 - t0
    result.send_s = time.perf_counter() - t1
    result.cpu_s = time.process_time() - cpu0
    return result


@dataclass
class Fill:
    """A whole backlog: the slices' results and the wall time of the send phase."""

    results: list[FillResult]
    wall_s: float

    @property
    def messages(self) -> int:
        return sum(r.messages for r in self.results)

    @property
    def acked(self) -> int:
        return sum(r.acked for r in self.results)

    @property
    def births(self) -> int:
        return sum(r.births for r in self.results)

    @property
    def rate(self) -> float:
        send = max((r.send_s for r in self.results), default=0.0)
        return self.messages / send if send > 0 else 0.0

    def last_seq(self) -> dict[tuple[int, str], int]:
        return {
            (r.index, name): top
            for r in self.results
            for name, top in zip(r.devices, r.last_seq, strict=True)
        }


def plan(
    host: str,
    port: int,
    stream: str,
    project: str,
    devices: int,
    messages: int,
    processes: int = 2,
    batch: int = 1,
    run_id: str = "fill",
) -> list[FillSlice]:
    """How `fill` splits the devices and messages over its processes."""
    processes = max(1, min(processes, devices))
    per_dev, extra_dev = divmod(devices, processes)
    per_msg, extra_msg = divmod(messages, processes)
    return [
        FillSlice(
            i,
            host,
            port,
            stream,
            project,
            per_dev + (1 if i < extra_dev else 0),
            per_msg + (1 if i < extra_msg else 0),
            batch,
            run_id,
        )
        for i in range(processes)
    ]


def fill(
    host: str,
    port: int,
    stream: str,
    project: str,
    devices: int,
    messages: int,
    processes: int = 2,
    batch: int = 1,
    run_id: str = "fill",
) -> Fill:
    """Publish `messages` (plus the stream's births) from `processes` processes and wait for
    every PUBACK. Raises if any process failed: a partial backlog would time nothing."""
    slices = plan(host, port, stream, project, devices, messages, processes, batch, run_id)
    t0 = time.perf_counter()
    if len(slices) == 1:
        results = [fill_slice(slices[0])]
    else:
        ctx: Any = multiprocessing.get_context("spawn")
        with ctx.Pool(len(slices)) as pool:
            results = pool.map(fill_slice, slices)
    wall = time.perf_counter() - t0
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError("filler failed: " + "; ".join(errors))
    return Fill(results, wall)
