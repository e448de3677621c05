"""One publisher process: a slice of the device fleet on one paho-mqtt connection.

paho is driven by hand (`publish` then `loop(0)`) rather than by its network thread: one
thread doing both is what lets a single Python process reach tens of thousands of QoS 1
messages per second. Every PUBACK is counted against its (device, seq), so the run knows
exactly which messages the broker accepted; "lost" later means accepted but never stored.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from loadtests.mqttbytes import mqtt_string, remaining_length
from loadtests.payloads import make_format

TICK_S = 0.2
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True)
class PublisherConfig:
    index: int
    host: str
    port: int
    project: str
    stream: str
    devices: int
    rate: float  # messages per second for this process; 0 = as fast as possible
    qos: int
    duration_s: float
    batch: int = 1
    window: int = 2000  # QoS 1 messages in flight before the publisher waits for acks
    ack_wait_s: float = 30.0
    seed: int = 0
    run_id: str = "bench"
    # Pre-encoded packets on a plain socket (`_publish_raw`) instead of paho: several times
    # the rate per process. It does not reconnect, so runs with faults keep paho.
    raw: bool = False


@dataclass
class PublisherResult:
    index: int
    devices: list[str]
    last_seq: list[int]  # highest seq published per device (records, not messages)
    messages: int = 0
    acked: int = 0
    unacked: dict[str, list[int]] = field(default_factory=dict)  # device -> record seqs
    started: float = 0.0  # wall clock
    publish_end: float = 0.0
    target_rate: float = 0.0
    reconnects: int = 0
    no_subscribers: int = 0  # acknowledged with reason "no matching subscribers"
    cpu_s: float = 0.0  # the process's own CPU seconds, publishing included
    error: str | None = None

    @property
    def achieved_rate(self) -> float:
        span = self.publish_end - self.started
        return self.messages / span if span > 0 else 0.0


def device_names(index: int, count: int) -> list[str]:
    return [f"d{index:02d}-{i:05d}" for i in range(count)]


def run_publisher(cfg: PublisherConfig, ticks: Queue[Any]) -> None:
    """Process entry point: publish for `duration_s`, stream progress, then report."""
    try:
        result = (_publish_raw if cfg.raw and cfg.qos > 0 else _publish)(cfg, ticks)
        result.cpu_s = time.process_time()
    except Exception as exc:  # reported to the parent, which fails the run loudly
        result = PublisherResult(cfg.index, [], [], error=f"{type(exc).__name__}: {exc}")
    ticks.put(("done", cfg.index, result))


def _publish(cfg: PublisherConfig, ticks: Queue[Any]) -> PublisherResult:
    names = device_names(cfg.index, cfg.devices)
    fmt = make_format(cfg.stream, cfg.project, cfg.index, names, cfg.batch, cfg.seed)
    topics = fmt.topics
    render = fmt.render
    next_seq = [1] * cfg.devices
    pending: dict[int, tuple[int, int]] = {}  # mid -> (device index, first seq)
    state = {"acked": 0, "connected": False, "reconnects": 0, "no_subscribers": 0}

    def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if pending.pop(mid, None) is not None and not getattr(rc, "is_failure", False):
            state["acked"] += 1
            # 0x10 "No matching subscribers": accepted, but nobody (no session) will get it.
            if getattr(rc, "value", 0) == NO_MATCHING_SUBSCRIBERS:
                state["no_subscribers"] += 1

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        state["connected"] = not getattr(rc, "is_failure", False)

    def on_disconnect(_c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        state["connected"] = False

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{cfg.run_id}-pub-{cfg.index}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(max(20, cfg.window))
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    # A spawned publisher may take seconds to start on a loaded machine, and a broker
    # restart scheduled early in the run can fall before its first connection: keep trying
    # for as long as acknowledgements are waited for, as the later reconnects do.
    give_up = time.monotonic() + cfg.ack_wait_s
    while True:
        try:
            client.connect(
                cfg.host,
                cfg.port,
                keepalive=30,
                clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )
            break
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.2)
    # The CONNACK can be lost too: a broker restart just after the TCP connect closes the
    # socket before it, and `loop` alone would then wait for it forever.
    while not state["connected"]:
        if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
            if time.monotonic() > give_up:
                raise ConnectionError("no CONNACK from the broker within ack_wait_s")
            try:
                client.reconnect()
            except OSError:
                time.sleep(0.2)
    for birth_topic, birth in fmt.births():
        client.publish(birth_topic, birth, qos=1)
    client.loop(timeout=0.05)

    result = PublisherResult(cfg.index, names, [0] * cfg.devices, target_rate=cfg.rate)
    qos1 = cfg.qos > 0
    start = time.monotonic()
    result.started = time.time()
    end = start + cfg.duration_s
    next_tick = start + TICK_S
    last_reconnect = 0.0
    sent = 0
    d = 0
    n = cfg.devices
    now = start
    while now < end:
        allowed = int((now - start) * cfg.rate) - sent if cfg.rate > 0 else 256
        if qos1:
            allowed = min(allowed, cfg.window - len(pending))
        if not state["connected"] and not qos1:
            allowed = 0  # QoS 0 cannot be queued for later: count only what went out
        for _ in range(min(allowed, 256)):
            seq = next_seq[d]
            info = client.publish(topics[d], render(d, seq, int(time.time() * 1000)), cfg.qos)
            if qos1:
                pending[info.mid] = (d, seq)
            elif info.rc != mqtt.MQTT_ERR_SUCCESS:
                continue
            next_seq[d] = seq + cfg.batch
            sent += 1
            d = d + 1 if d + 1 < n else 0
        rc = client.loop(timeout=0.0 if allowed > 0 else 0.002)
        now = time.monotonic()
        if rc != mqtt.MQTT_ERR_SUCCESS and not state["connected"] and now - last_reconnect > 0.5:
            last_reconnect = now
            try:
                client.reconnect()
                state["reconnects"] += 1
            except OSError:
                pass
        if now >= next_tick:
            next_tick += TICK_S
            ticks.put(("tick", cfg.index, time.time(), sent, state["acked"]))
    result.publish_end = time.time()
    deadline = time.monotonic() + cfg.ack_wait_s
    while pending and time.monotonic() < deadline:
        if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS and not state["connected"]:
            try:
                client.reconnect()
                state["reconnects"] += 1
            except OSError:
                time.sleep(0.2)
    ticks.put(("tick", cfg.index, time.time(), sent, state["acked"]))
    client.disconnect()
    result.messages = sent
    result.acked = state["acked"] if qos1 else sent
    result.reconnects = state["reconnects"]
    result.no_subscribers = state["no_subscribers"]
    result.last_seq = [s - 1 for s in next_seq]
    for dev, seq in pending.values():
        result.unacked.setdefault(names[dev], []).extend(range(seq, seq + cfg.batch))
    return result


def _connect_v5(client_id: str, keepalive_s: int = 30) -> bytes:
    """MQTT v5 CONNECT, clean start, no properties: PUBACK reason codes come back (0x10)."""
    body = mqtt_string(b"MQTT") + bytes([5, 0x02]) + struct.pack("!H", keepalive_s) + b"\x00"
    body += mqtt_string(client_id.encode())
    return b"\x10" + remaining_length(len(body)) + body


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One whole packet from a blocking socket (for CONNACK)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    first = exactly(1)[0]
    length, shift = 0, 0
    while True:
        byte = exactly(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, exactly(length)


def _pubacks(buf: bytearray) -> tuple[int, int, int]:
    """(PUBACKs, of which "no matching subscribers", bytes used) from the front of `buf`;
    an incomplete packet at the end stays for the next read."""
    n = nosub = i = 0
    end = len(buf)
    while i + 2 <= end:
        if buf[i] != 0x40:  # DISCONNECT (0xe0) carries the broker's reason code
            raise ConnectionError(f"unexpected packet from the broker: {bytes(buf[i : i + 4])!r}")
        length = buf[i + 1]  # a PUBACK's remaining length is 2 to 4: one byte
        if i + 2 + length > end:
            break
        if length >= 3 and buf[i + 4] == NO_MATCHING_SUBSCRIBERS:
            nosub += 1
        elif length >= 3 and buf[i + 4] >= 0x80:
            raise ConnectionError(f"PUBACK refused with reason 0x{buf[i + 4]:02x}")
        n += 1
        i += 2 + length
    return n, nosub, i


def _publish_raw(cfg: PublisherConfig, ticks: Queue[Any]) -> PublisherResult:
    """QoS 1 publishing with packets built from bytes and written in slices.

    Why: paho builds a message object, takes locks and calls loop() per message; a
    generator of that kind tops out below what ingest drains, and a throughput run then
    measures the generator (issue 21). Here a PUBLISH is `template % (ts, seq)` plus a few
    bytes of header, and the broker's PUBACKs (in receive order, as Mosquitto sends them)
    are counted off the socket in bulk: the messages not yet acknowledged are always the
    last `sent - acked` ones, so no per-id bookkeeping is needed."""
    names = device_names(cfg.index, cfg.devices)
    fmt = make_format(cfg.stream, cfg.project, cfg.index, names, cfg.batch, cfg.seed)
    topics = [mqtt_string(t.encode()) for t in fmt.topics]
    render = fmt.render
    sock = socket.create_connection((cfg.host, cfg.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_connect_v5(f"{cfg.run_id}-pub-{cfg.index}"))
    kind, body = _read_packet(sock)
    if kind != 0x20 or len(body) < 2 or body[1] != 0:
        raise ConnectionError(f"CONNACK refused: {body!r}")
    sock.setblocking(False)
    result = PublisherResult(cfg.index, names, [0] * cfg.devices, target_rate=cfg.rate)
    order: list[tuple[int, int]] = []  # (device, first seq) per record message, send order
    births = fmt.births()
    mid = 0
    out = bytearray()
    for t, payload in births:
        mid = mid % 65535 + 1
        var = mqtt_string(t.encode()) + struct.pack("!H", mid) + b"\x00"  # no properties
        out += b"\x32" + remaining_length(len(var) + len(payload)) + var + payload
    inbuf = bytearray()
    acked_packets = nosub = 0
    next_seq = [1] * cfg.devices
    window = min(cfg.window, 30_000)
    sent = 0
    d = 0
    n = cfg.devices
    start = time.monotonic()
    result.started = time.time()
    end = start + cfg.duration_s
    next_tick = start + TICK_S
    now = start

    def pump(wait: float) -> None:
        """Write what is pending and count what the broker acknowledged."""
        nonlocal out, acked_packets, nosub
        readers, writers, _ = select.select([sock], [sock] if out else [], [], wait)
        if writers and out:
            try:
                written = sock.send(out)
            except BlockingIOError:
                written = 0
            del out[:written]
        if readers:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            inbuf.extend(data)
            k, ns, used = _pubacks(inbuf)
            del inbuf[:used]
            acked_packets += k
            nosub += ns

    while now < end:
        in_flight = len(births) + sent - acked_packets
        allowed = int((now - start) * cfg.rate) - sent if cfg.rate > 0 else 512
        allowed = min(allowed, 512, window - in_flight)
        if allowed > 0 and len(out) < (1 << 20):
            ts_ms = int(time.time() * 1000)
            for _ in range(allowed):
                seq = next_seq[d]
                payload = render(d, seq, ts_ms)
                mid = mid % 65535 + 1
                var = topics[d] + mid.to_bytes(2, "big") + b"\x00"  # v5: no properties
                out += b"\x32" + remaining_length(len(var) + len(payload)) + var + payload
                order.append((d, seq))
                next_seq[d] = seq + cfg.batch
                d = d + 1 if d + 1 < n else 0
            sent += allowed
        pump(0.0 if allowed > 0 else 0.002)
        now = time.monotonic()
        if now >= next_tick:
            next_tick += TICK_S
            acked = max(0, acked_packets - len(births))
            ticks.put(("tick", cfg.index, time.time(), sent, acked))
    result.publish_end = time.time()
    deadline = time.monotonic() + cfg.ack_wait_s
    while (out or acked_packets < len(births) + sent) and time.monotonic() < deadline:
        pump(0.05)
    acked = max(0, acked_packets - len(births))
    ticks.put(("tick", cfg.index, time.time(), sent, acked))
    with contextlib.suppress(OSError):
        sock.setblocking(True)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    result.messages = sent
    result.acked = acked
    result.no_subscribers = nosub
    result.last_seq = [s - 1 for s in next_seq]
    for dev, seq in order[acked:]:
        result.unacked.setdefault(names[dev], []).extend(range(seq, seq + cfg.batch))
    return result
