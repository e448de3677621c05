"""One publisher process: a slice of the device fleet on one paho-mqtt connection.

paho is driven by hand (`publish` then `loop(0)`) rather than by its network thread: one
thread doing both is what lets a single Python process reach tens of thousands of QoS 1
messages per second. Every PUBACK is counted against its (device, seq), so the run knows
exactly which messages the broker accepted; "lost" later means accepted but never stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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
        result = _publish(cfg, ticks)
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
    client.connect(
        cfg.host,
        cfg.port,
        keepalive=30,
        clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties=props,
    )
    while not state["connected"]:
        client.loop(timeout=0.05)
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
