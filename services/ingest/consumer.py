"""MQTT input: one persistent MQTT v5 session, reconnected and resubscribed for ever.

The session is bound to `ingest.client_id` with clean start off and a session expiry, so
while ingest is down or reconnecting the broker keeps queueing its QoS 1 messages. The
CONNECT property Receive Maximum caps the messages the broker sends without our PUBACK:
acknowledging only after commit turns a slow database into broker-side queueing.

Shared subscriptions (`$share/{share_group}/...`) let replicas split the load. Mosquitto 2
does not restore shared subscriptions from its persistence file: after a broker restart,
messages published before ingest has resubscribed reach no subscriber, and the broker
acknowledges them to the device (PUBACK reason 0x10 "no matching subscribers") and drops
them. That window is the time from the broker being back to our next connection attempt,
so the reconnect backoff is capped at `RECONNECT_MAX_S` = 1 s. With the former 10 s cap,
attempts at about 0.25, 0.75, 1.75 and 3.75 s (plus jitter) could leave ingest away for
seconds after a 2 s restart: one bench run lost 19,826 acknowledged records at 5,000 msg/s,
about 4 s of traffic. Attempts against a broker that is down cost one refused TCP
connection each.
An empty `share_group` subscribes without `$share` (one replica only), and the persistent
session then keeps that subscription across broker restarts, so nothing is lost at all.

Message ids belong to one connection. Each connection is a new generation and a new
client object; acknowledgements for an older generation are dropped (the broker
redelivers those messages and the writer's unique keys absorb the duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from services.core.runtime import mqtt_client_kwargs
from services.core.settings import Settings
from services.ingest.adapters.base import Adapter, Command
from services.ingest.metrics import IngestMetrics
from services.ingest.mqttio import PacketReader, enable_manual_ack, send_acks

log = logging.getLogger(__name__)

RECONNECT_MIN_S: Final = 0.25
RECONNECT_MAX_S: Final = 1.0  # bounds the post-restart window, see above

# (topic, payload, message id, qos, dup flag)
MessageHandler = Callable[[str, bytes, int, int, bool], None]


class Consumer:
    def __init__(
        self,
        settings: Settings,
        adapters: list[Adapter],
        handle: MessageHandler,
        metrics: IngestMetrics,
        on_generation: Callable[[int], None],
        on_disconnected: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.handle = handle
        self.metrics = metrics
        self.on_generation = on_generation
        self.on_disconnected = on_disconnected
        self.gen = 0
        self.connected = False
        self._client: aiomqtt.Client | None = None
        self._reader: PacketReader | None = None
        self._paused = False

    # ------------------------------------------------------------------ controls

    def pause(self) -> None:
        """Stop reading from the broker (backpressure or shutdown)."""
        self._paused = True
        if self._reader is not None and self.connected:  # CONNACK and SUBACK must be read
            self._reader.pause()

    def resume(self) -> None:
        self._paused = False
        if self._reader is not None:
            self._reader.resume()

    def ack(self, gen: int, mids: list[int]) -> None:
        """Acknowledge committed QoS 1 messages if their connection is still the live one."""
        client = self._client
        if gen == self.gen and client is not None:
            send_acks(client, mids)

    def publish(self, cmd: Command) -> None:
        """Publish an adapter's command; best effort while disconnected."""
        client = self._client
        if client is None or not self.connected:
            log.warning("not connected; dropped command to %s", cmd.topic)
            return
        client._client.publish(cmd.topic, cmd.payload, cmd.qos, cmd.retain)

    # ------------------------------------------------------------------ connection

    def _subscriptions(self) -> list[tuple[str, SubscribeOptions]]:
        group = self.settings.ingest.share_group
        subs: list[tuple[str, SubscribeOptions]] = []
        for adapter in self.adapters:
            prefix = f"$share/{group}/" if adapter.shared() and group else ""
            subs.extend((prefix + f, SubscribeOptions(qos=1)) for f in adapter.topic_filters())
        return subs

    def _hook(self, name: str) -> list[Any]:
        return [getattr(a, name) for a in self.adapters if callable(getattr(a, name, None))]

    def _make_client(self) -> aiomqtt.Client:
        ingest = self.settings.ingest
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = ingest.session_expiry_s
        props.ReceiveMaximum = ingest.receive_maximum
        will = None
        for hook in self._hook("will"):
            cmd = hook()
            if cmd is not None:
                will = aiomqtt.Will(cmd.topic, cmd.payload, cmd.qos, cmd.retain)
                break
        client = aiomqtt.Client(
            **mqtt_client_kwargs(
                self.settings,
                ingest.client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
                will=will,
                timeout=10,
            )
        )
        # PacketReader hands PUBLISH packets to us without paho; should one ever reach
        # paho, manual acknowledgement keeps it from being acknowledged before commit.
        enable_manual_ack(client)
        return client

    async def run(self, stop: asyncio.Event, drain: Callable[[], Awaitable[None]]) -> None:
        """Consume until `stop` is set; then stop reading, `drain`, and disconnect cleanly."""
        delay = RECONNECT_MIN_S
        first = True
        while not stop.is_set():
            if not first:
                self.metrics.reconnects.inc()
            first = False
            client = self._make_client()
            if self._reader is not None:
                self._reader.close()
            self._reader = PacketReader(client, self.handle)
            # Messages can arrive right after CONNACK, before `async with` returns.
            self.gen += 1
            self._client = client
            self.on_generation(self.gen)
            try:
                async with client:
                    delay = RECONNECT_MIN_S
                    await self._session(client, stop, drain)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT connection lost or refused: %s", exc)
            finally:
                self._disconnect_cleanup()
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(
        self, client: aiomqtt.Client, stop: asyncio.Event, drain: Callable[[], Awaitable[None]]
    ) -> None:
        granted = await client.subscribe(self._subscriptions())
        failed = [str(code) for code in granted if getattr(code, "is_failure", False)]
        if failed:
            raise aiomqtt.MqttError(f"subscription refused: {', '.join(failed)}")
        self.connected = True
        if self._paused and self._reader is not None:
            self._reader.pause()
        self.metrics.mqtt_connected.set(1)
        log.info("connected to %s:%d", self.settings.mqtt.host, self.settings.mqtt.port)
        for hook in self._hook("on_connect"):
            for cmd in hook():
                self.publish(cmd)
        lost = asyncio.ensure_future(_disconnected(client))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if lost in done:
            lost.result()  # raises the MqttError that says why
            return
        # Shutdown: stop reading, commit and acknowledge what was read, then disconnect.
        self.pause()
        await drain()
        lost.cancel()

    def _disconnect_cleanup(self) -> None:
        was = self.connected
        self.connected = False
        self.metrics.mqtt_connected.set(0)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._client = None
        if was:
            self.on_disconnected()


async def _disconnected(client: aiomqtt.Client) -> None:
    try:
        await asyncio.shield(client._disconnected)
    except aiomqtt.MqttError:
        raise
    except Exception as exc:
        raise aiomqtt.MqttError(f"connection lost: {exc}") from exc
    raise aiomqtt.MqttError("broker closed the connection")
