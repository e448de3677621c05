"""The rules service's MQTT connection: ingest's packet reader in, bounded by backpressure.

aiomqtt's message iterator costs several Python objects and a task wake-up per message and
queues without bound while the service falls behind: under 10,000 msg/s the rules service
lagged by tens of seconds and grew to hundreds of megabytes. Here ingest's `PacketReader`
parses PUBLISH packets straight off the socket and each message is evaluated in the
reader's callback (evaluation takes microseconds), so nothing queues per message.

Memory is bounded at two points. The broker sends at most `RECEIVE_MAXIMUM` unacknowledged
QoS 1 messages (MQTT v5 Receive Maximum). Acknowledgements are gathered for up to
`ACK_DELAY_S` (or `ACK_BATCH` messages) and sent in one write: profiling under the
rules-latency benchmark showed half the service's time in socket sends when every read
was acknowledged on its own (a loopback send runs the broker side's TCP receive too).
When the transitions waiting for the database pass the service's `HIGH_WATER`, the reader
stops reading (TCP flow control then holds the broker back) until the writer has brought
them under `LOW_WATER`. Messages are acknowledged once evaluated: rules evaluate at most
once across a crash (docs/rules.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.runtime import mqtt_client_kwargs
from services.core.settings import Settings
from services.ingest.mqttio import PacketReader, enable_manual_ack, send_acks
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
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        self._reader: PacketReader | None = None
        self._acks: list[int] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._paused = False

    # ----------------------------------------------------------------- backpressure

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.metrics.input_pauses.inc()
        if self._reader is not None and self.connected.is_set():
            self._reader.pause()

    def resume(self) -> None:
        self._paused = False
        if self._reader is not None:
            self._reader.resume()

    @property
    def paused(self) -> bool:
        return self._paused

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
        client = self.client
        if client is not None and acks:
            send_acks(client, acks)

    def _drop_acks(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._acks = []

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue a QoS 1 message in send order; False while there is no connection."""
        client = self.client
        if client is None or not self.connected.is_set():
            return False
        info = client._client.publish(topic, payload, qos=1)
        return bool(info.rc == paho.MQTT_ERR_SUCCESS)

    # ----------------------------------------------------------------- connection

    def _make_client(self) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client = aiomqtt.Client(
            **mqtt_client_kwargs(
                self.settings,
                self.settings.rules.client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=True,
                properties=props,
                max_inflight_messages=RECEIVE_MAXIMUM,  # alarm bursts go out at once
                timeout=10,
            )
        )
        enable_manual_ack(client)  # PUBLISH never reaches paho; if one did, we ack it
        return client

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            client = self._make_client()
            self._reader = PacketReader(client, self._on_publish)
            self.client = client
            try:
                async with client:
                    granted = await client.subscribe([(f, 1) for f in self.filters])
                    refused = [
                        f
                        for f, code in zip(self.filters, granted, strict=False)
                        if getattr(code, "is_failure", False)
                    ]
                    if refused:  # the account may lack a protocol's topics: judge the rest
                        log.warning("broker refused subscriptions %s", refused)
                    self.connected.set()
                    if self._paused:
                        self._reader.pause()
                    self.metrics.mqtt_connected.set(1)
                    self.ready.set()
                    log.info("subscribed to %s", self.filters)
                    await _until_lost_or_stopped(client, stop)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT connection lost or refused: %s; retrying", exc)
            finally:
                self._drop_acks()  # message ids belong to the lost connection
                self.client = None
                self.connected.clear()
                self.metrics.mqtt_connected.set(0)
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            if not stop.is_set():
                await asyncio.sleep(RECONNECT_S)


async def _until_lost_or_stopped(client: aiomqtt.Client, stop: asyncio.Event) -> None:
    lost: asyncio.Future[None] = asyncio.ensure_future(asyncio.shield(client._disconnected))
    stopping: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
    try:
        waits: set[asyncio.Future[Any]] = {lost, stopping}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if lost in done:
        exc = lost.exception()
        if isinstance(exc, aiomqtt.MqttError):
            raise exc
        raise aiomqtt.MqttError(f"connection lost: {exc}" if exc else "broker closed")
    lost.cancel()
