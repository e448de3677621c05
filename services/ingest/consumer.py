"""MQTT input: one persistent MQTT v5 session, reconnected and resubscribed for ever.

The session is bound to `ingest.client_id` with clean start off and a session expiry, so
while ingest is down or reconnecting the broker keeps queueing its QoS 1 messages. The
CONNECT property Receive Maximum caps the messages the broker sends without our PUBACK:
acknowledging only after commit turns a slow database into broker-side queueing. The
session keeps that cap itself, whatever the broker sends (`services.core.mqtt.connection`),
and when it is reached the service seals its batch at once (`on_window_full`): nothing
more arrives before a commit, so waiting for the batch's delay would only stall.
Acknowledgements leave in receive order even though several writers commit batches in
any order (`services.core.mqtt.acks`).

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

Message ids belong to one connection. Each connection is a new generation; acknowledgements
for an older generation are dropped (the broker redelivers those messages and the writer's
unique keys absorb the duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from services.core.mqtt import Backoff, ConnectOptions, Session, Will
from services.core.runtime import mqtt_connect_options, mqtt_endpoint
from services.core.settings import Settings
from services.ingest.metrics import IngestMetrics
from services.protocols.adapters.base import Adapter, Command

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
        on_window_full: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.metrics = metrics
        self.on_generation = on_generation
        self.on_disconnected = on_disconnected
        self.session = Session(
            mqtt_endpoint(settings),
            self._options,
            self._subscriptions(),
            handle,
            Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S),
            refused_is_fatal=True,
            on_generation=on_generation,
            on_up=self._up,
            on_down=self._down,
            on_attempt=self._attempt,
            on_window_full=on_window_full,
        )

    @property
    def connected(self) -> bool:
        return self.session.up.is_set()

    @property
    def gen(self) -> int:
        return self.session.gen

    # ------------------------------------------------------------------ controls

    def pause(self) -> None:
        """Stop reading from the broker (backpressure or shutdown)."""
        self.session.pause()

    def resume(self) -> None:
        self.session.resume()

    def ack(self, gen: int, mids: list[int]) -> None:
        """Acknowledge committed QoS 1 messages if their connection is still the live one."""
        self.session.ack(gen, mids)

    def publish(self, cmd: Command) -> None:
        """Publish an adapter's command; best effort while disconnected."""
        fut = self.session.publish(cmd.topic, cmd.payload, cmd.qos, cmd.retain)
        if fut is None:
            log.warning("not connected; dropped command to %s", cmd.topic)
            return
        fut.add_done_callback(lambda f: _report_refusal(cmd.topic, f))

    # ------------------------------------------------------------------ connection

    def _subscriptions(self) -> list[tuple[str, int]]:
        group = self.settings.ingest.share_group
        subs: list[tuple[str, int]] = []
        for adapter in self.adapters:
            prefix = f"$share/{group}/" if adapter.shared() and group else ""
            subs.extend((prefix + f, 1) for f in adapter.topic_filters())
        return subs

    def _hook(self, name: str) -> list[Any]:
        return [getattr(a, name) for a in self.adapters if callable(getattr(a, name, None))]

    def _options(self) -> ConnectOptions:
        ingest = self.settings.ingest
        will = None
        for hook in self._hook("will"):
            cmd = hook()
            if cmd is not None:
                will = Will(cmd.topic, cmd.payload, cmd.qos, cmd.retain)
                break
        return mqtt_connect_options(
            self.settings,
            ingest.client_id,
            clean_start=False,
            session_expiry_s=ingest.session_expiry_s,
            receive_maximum=ingest.receive_maximum,
            will=will,
        )

    def _attempt(self, n: int) -> None:
        if n > 1:
            self.metrics.reconnects.inc()

    def _up(self) -> None:
        self.metrics.mqtt_connected.set(1)
        log.info("connected to %s:%d", self.settings.mqtt.host, self.settings.mqtt.port)
        for hook in self._hook("on_connect"):
            for cmd in hook():
                self.publish(cmd)

    def _down(self, was_up: bool) -> None:
        self.metrics.mqtt_connected.set(0)
        if was_up:
            self.on_disconnected()

    async def run(self, stop: asyncio.Event, drain: Callable[[], Awaitable[None]]) -> None:
        """Consume until `stop` is set; then stop reading, `drain`, and disconnect cleanly."""
        await self.session.run(stop, drain)


def _report_refusal(topic: str, fut: asyncio.Future[int]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("command to %s not acknowledged: %s", topic, exc)
    elif fut.result() >= 0x80:
        log.warning("broker refused command to %s: reason 0x%02x", topic, fut.result())
