"""Benchmark: how fast each MQTT client candidate drains a QoS 1 backlog, acking in order.

Why: issue 16 chose between paho-mqtt 2.x's public manual-ack API and the project's own
MQTT v5 codec (`services.core.mqtt`) by measurement. One Mosquitto of its own gets a
persistent session per candidate (clean start off, session expiry), one publisher fills
all of them with the same backlog of QoS 1 ~200 B messages, and then each candidate in
turn drains its session doing nothing but acknowledging every message in receive order:

* `own`   - `services.core.mqtt.Connection`, PUBACKs written per 500 messages,
* `paho`  - paho-mqtt `Client(manual_ack=True)` driven from asyncio with its public
            `socket/loop_read/loop_write/loop_misc/want_write`, `client.ack(mid, 1)` per
            message in `on_message` (receive order),
* `c`     - `mosquitto_sub -q 1 -c` to /dev/null (Debian's mosquitto-clients), when
            installed: the C reference.

Run: `.venv/bin/python -m loadtests.mqtt_drain [--messages 200000]`. It prints msg/s per
candidate and the ratio to the C client; docs/architecture.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from f5gdev.devstack.servers import Mosquitto, free_port
from services.core.mqtt import Connection, ConnectOptions

TOPIC = "bench/drain"
PAYLOAD = bytes(range(200))
SESSION_S = 3600


def _options(client_id: str) -> ConnectOptions:
    return ConnectOptions(client_id, clean_start=False, session_expiry_s=SESSION_S)


async def _register(port: int, client_id: str) -> None:
    conn = await Connection.open("127.0.0.1", port, _options(client_id), lambda *a: None)
    codes = await conn.subscribe([(TOPIC, 1)])
    assert codes == [1], codes
    await conn.disconnect()


async def _fill(port: int, messages: int) -> None:
    conn = await Connection.open("127.0.0.1", port, ConnectOptions("filler"), lambda *a: None)
    window = 1000
    pending: list[asyncio.Future[int]] = []
    for _ in range(messages):
        pending.append(conn.publish(TOPIC, PAYLOAD, 1))
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    await conn.disconnect()


async def _drain_own(port: int, messages: int) -> float:
    done = asyncio.Event()
    count = 0
    mids: list[int] = []

    def on_publish(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        nonlocal count
        count += 1
        mids.append(mid)
        if len(mids) >= 500 or count == messages:
            conn.ack(mids)
            mids.clear()
        if count == messages:
            done.set()

    conn = Connection(_options("own"), on_publish)
    start = time.perf_counter()
    await conn.connect("127.0.0.1", port)
    await done.wait()
    elapsed = time.perf_counter() - start
    await conn.disconnect()
    return elapsed


async def _drain_paho(port: int, messages: int) -> float:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    count = 0
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id="paho",
        protocol=paho.MQTTv5,
        manual_ack=True,
    )

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        c.ack(msg.mid, msg.qos)
        if count == messages:
            done.set()

    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_S
    start = time.perf_counter()
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    sock = client.socket()
    assert sock is not None
    fd = sock.fileno()

    def on_read() -> None:
        client.loop_read()
        if client.want_write():
            client.loop_write()

    loop.add_reader(fd, on_read)
    client.loop_write()  # CONNECT
    try:
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), 1.0)
            except TimeoutError:
                client.loop_misc()
            if client.want_write():
                client.loop_write()
    finally:
        loop.remove_reader(fd)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_write()
    return elapsed


def _drain_c(port: int, messages: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-c",
            "-i",
            "c",
            "-V",
            "mqttv5",
            "-x",
            str(SESSION_S),
            "-t",
            TOPIC,
            "-C",
            str(messages),
        ],
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - start


def _register_c(port: int) -> None:
    # -E: subscribe and exit, which registers the persistent session and its subscription.
    args = ["-h", "127.0.0.1", "-p", str(port), "-q", "1", "-c", "-i", "c", "-V", "mqttv5"]
    args += ["-x", str(SESSION_S), "-t", TOPIC, "-E"]
    subprocess.run(["mosquitto_sub", *args], check=True, timeout=60)


async def main(messages: int, rounds: int) -> dict[str, list[float]]:
    has_c = shutil.which("mosquitto_sub") is not None
    rates: dict[str, list[float]] = {"own": [], "paho": []}
    if has_c:
        rates["c"] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto", port=free_port())
        broker.start()
        try:
            for _ in range(rounds):
                await _register(broker.port, "own")
                await _register(broker.port, "paho")
                if has_c:
                    _register_c(broker.port)
                await _fill(broker.port, messages)
                rates["own"].append(messages / await _drain_own(broker.port, messages))
                rates["paho"].append(messages / await _drain_paho(broker.port, messages))
                if has_c:
                    rates["c"].append(messages / _drain_c(broker.port, messages))
        finally:
            broker.stop()
    return rates


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    rates = asyncio.run(main(args.messages, args.rounds))
    c = max(rates.get("c") or [0.0])
    for name, values in rates.items():
        best = max(values)
        ratio = f"  {best / c:.2f}x C" if c else ""
        print(f"{name:5s} {best:10,.0f} msg/s (best of {len(values)}){ratio}")


if __name__ == "__main__":
    run()
