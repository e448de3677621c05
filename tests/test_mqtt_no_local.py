"""No Local subscriptions (MQTT 5.0) against a real Mosquitto: a session does not get its
own publications back on such a subscription, and still gets everyone else's.

The commander subscribes to command announcements for the API's `queued` ones only; the
other three of every command's four announcements are its own, which the broker used to
send back to it at 500 commands/s for nothing (loadtests/commands_bench.py)."""

from __future__ import annotations

import asyncio

import paho.mqtt.publish as mqtt_publish
import pytest

from f5gdev.devstack.servers import Mosquitto
from services.commands.service import Commander
from services.core.mqtt import Backoff, ConnectOptions, Endpoint, Session
from services.core.mqtt.codec import NO_LOCAL, encode_subscribe
from services.core.settings import Settings
from services.protocols.commands import announce_filter


async def _received(port: int, options: int) -> list[str]:
    """Topics a session subscribed to `t/#` with `options` receives: its own publication
    `t/own`, then another client's `t/other` (the last, so its arrival ends the wait)."""
    got: list[str] = []
    other = asyncio.Event()

    def on_publish(topic: str, _p: bytes, _m: int, _q: int, _d: bool) -> None:
        got.append(topic)
        if topic == "t/other":
            other.set()

    session = Session(
        Endpoint("127.0.0.1", port),
        lambda: ConnectOptions(client_id=f"no-local-{options}", clean_start=True),
        [("t/#", options)],
        on_publish,
        Backoff(0.1, 0.2),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    try:
        await asyncio.wait_for(session.up.wait(), 30)
        fut = session.publish("t/own", b"mine", 1)
        assert fut is not None
        assert await asyncio.wait_for(fut, 30) == 0
        await asyncio.to_thread(
            mqtt_publish.single, "t/other", b"theirs", qos=1, hostname="127.0.0.1", port=port
        )
        await asyncio.wait_for(other.wait(), 30)
    finally:
        stop.set()
        await task
    return got


async def test_no_local_keeps_a_sessions_own_publications_from_it(broker: Mosquitto) -> None:
    assert await _received(broker.port, 1) == ["t/own", "t/other"]  # without: both
    assert await _received(broker.port, 1 | NO_LOCAL) == ["t/other"]


def test_only_qos_0_1_and_no_local_are_encoded() -> None:
    assert encode_subscribe(1, [("t/#", 1 | NO_LOCAL)]).endswith(b"t/#\x05")
    for bad in (2, 0x08, 0x10 | 1):
        with pytest.raises(ValueError, match="QoS 0 and 1"):
            encode_subscribe(1, [("t/#", bad)])


def test_the_commander_takes_announcements_without_its_own() -> None:
    settings = Settings()
    commander = Commander(settings)
    subs = dict(commander.session.subscriptions)  # type: ignore[arg-type]
    assert subs[announce_filter(settings.mqtt.topic_root)] == NO_LOCAL
