"""The rules service's MQTT input: the shared session component, bounded by backpressure.

A message iterator costs several Python objects and a task wake-up per message and queues
without bound while the service falls behind: under 10,000 msg/s the rules service lagged
by tens of seconds and grew to hundreds of megabytes. Here the session's packet stream
parses PUBLISH packets straight off the socket and each message is evaluated in the read
callback (evaluation takes microseconds), so nothing queues per message.

Memory is bounded at two points. The broker sends at most `RECEIVE_MAXIMUM` unacknowledged
QoS 1 messages (MQTT v5 Receive Maximum). Acknowledgements are gathered for up to
`ACK_DELAY_S` (or `ACK_BATCH` messages) and sent in one write: profiling under the
rules-latency benchmark showed half the service's time in socket sends when every read
was acknowledged on its own (a loopback send runs the broker side's TCP receive too).
When the transitions waiting for the database pass the service's `HIGH_WATER`, the reader
stops reading (TCP flow control then holds the broker back) until the writer has brought
them under `LOW_WATER`. Messages are acknowledged once evaluated, on a persistent session:
what a crash interrupts is delivered again, what arrives while the replica or the broker
restarts waits in the session (docs/rules.md, "Delivery guarantees").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from services.core.mqtt import Backoff, ConnectOptions, Session
from services.core.mqtt.connection import reason_name
from services.core.runtime import mqtt_connect_options, mqtt_endpoint
from services.core.settings import Settings
from services.rules.metrics import RulesMetrics

log = logging.getLogger("factory5g.rules")

RECEIVE_MAXIMUM: Final = 1000
ACK_BATCH: Final = RECEIVE_MAXIMUM // 4
ACK_DELAY_S: Final = 0.005
RECONNECT_S: Final = 1.0

# (topic, payload) -> None; called for every PUBLISH, in order.
Handler = Callable[[str, bytes], None]


class RulesInput:
    """One clean-start MQTT v5 connection, resubscribed after every loss, until stopped."""

    def __init__(
        self, settings: Settings, filters: list[str], handle: Handler, metrics: RulesMetrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.filters = filters
        self.handle = handle
        self.ready = asyncio.Event()
        self._acks: list[int] = []
        self._ack_gen = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.session = Session(
            mqtt_endpoint(settings),
            self._options,
            [(f, 1) for f in filters],
            self._on_publish,
            Backoff(RECONNECT_S, RECONNECT_S, jitter=False),
            refused_is_fatal=False,  # the account may lack a protocol's topics: judge the rest
            on_generation=self._new_generation,
            on_up=self._up,
            on_down=self._down,
        )
        self.connected = self.session.up

    # ----------------------------------------------------------------- backpressure

    def pause(self) -> None:
        if not self.session.paused:
            self.metrics.input_pauses.inc()
        self.session.pause()

    def resume(self) -> None:
        self.session.resume()

    @property
    def paused(self) -> bool:
        return self.session.paused

    # ----------------------------------------------------------------- messages

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        self.handle(topic, payload)
        if qos:
            acks = self._acks
            acks.append(mid)
            if len(acks) >= ACK_BATCH:
                self._flush_acks()
            elif self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    ACK_DELAY_S, self._flush_acks
                )

    def _flush_acks(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        acks, self._acks = self._acks, []
        self.session.ack(self._ack_gen, acks)

    def _new_generation(self, gen: int) -> None:
        # Message ids belong to the lost connection: drop what was not yet sent.
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._acks = []
        self._ack_gen = gen

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue a QoS 1 message in send order; False while there is no connection."""
        fut = self.session.publish(topic, payload, qos=1)
        if fut is None:
            return False
        fut.add_done_callback(lambda f: _report(topic, f))
        return True

    # ----------------------------------------------------------------- connection

    def _options(self) -> ConnectOptions:
        # A persistent session: Mosquitto restores its subscription and queue after a
        # restart, so what devices publish before the replica is back is judged when it is
        # (tests/test_rules_broker_restart.py: 12 of 12 e-stops went unjudged with a clean
        # session, 0 with this one).
        expiry = self.settings.rules.session_expiry_s
        return mqtt_connect_options(
            self.settings,
            self.settings.rules.client_id,
            clean_start=expiry == 0,
            session_expiry_s=expiry,
            receive_maximum=RECEIVE_MAXIMUM,
        )

    def _up(self) -> None:
        self.metrics.mqtt_connected.set(1)
        self.ready.set()
        log.info("subscribed to %s", self.filters)

    def _down(self, was_up: bool) -> None:
        self.metrics.mqtt_connected.set(0)

    async def run(self, stop: asyncio.Event) -> None:
        await self.session.run(stop)


def _report(topic: str, fut: asyncio.Future[int]) -> None:
    """Surface a refused or unacknowledged alarm publish in the log."""
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("alarm publish to %s not acknowledged: %s", topic, exc)
    elif fut.result() >= 0x80:
        log.warning("broker refused alarm publish to %s: %s", topic, reason_name(fut.result()))
