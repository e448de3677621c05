"""One MQTT session for a service: connect, subscribe, read, acknowledge, publish, reconnect.

The single owner of the services' MQTT connections (ingest, rules input). Each network
connection is a generation: message ids belong to it, and acknowledgements for an older
generation are dropped (the broker redelivers those messages; the services' writers are
idempotent). Acknowledgements leave in receive order per connection (`acks.AckOrder`).

Subscriptions refused in SUBACK either end the connection (`refused_is_fatal`: ingest
must not run with part of its streams missing) or are logged (rules: an account may lack
a protocol's topics; the rest is still judged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.core.mqtt.backoff import Backoff
from services.core.mqtt.codec import ConnectOptions, Properties
from services.core.mqtt.connection import Connection, MqttError, RefusedError, reason_name
from services.core.mqtt.stream import PublishHandler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    connect_timeout_s: float = 10.0


class SubscriptionRefusedError(MqttError):
    pass


class Session:
    def __init__(
        self,
        endpoint: Endpoint,
        options: Callable[[], ConnectOptions],
        subscriptions: list[tuple[str, int]] | Callable[[], list[tuple[str, int]]],
        on_publish: PublishHandler,
        backoff: Backoff,
        *,
        refused_is_fatal: bool = True,
        on_generation: Callable[[int], None] | None = None,
        on_up: Callable[[], None] | None = None,
        on_down: Callable[[bool], None] | None = None,
        on_attempt: Callable[[int], None] | None = None,
        on_window_full: Callable[[], None] | None = None,
        keep_properties: bool = False,
    ) -> None:
        """`options` and `subscriptions` (if callable) are asked anew per connection (a
        will may change, e.g. Sparkplug's; the API hub's device filters come and go).

        `on_generation(gen)` runs before CONNECT (messages may follow CONNACK at once),
        `on_up()` once subscribed, `on_down(was_up)` when a connection ends,
        `on_attempt(n)` before each connection attempt (n from 1), `on_window_full()` when
        the messages held unacknowledged reach the Receive Maximum (reading stops until
        some are acknowledged; see `Connection`). With `keep_properties`,
        `publish_properties()` gives the properties of the PUBLISH being handled (the
        commander reads correlation data; ingest and rules skip them for speed)."""
        self.endpoint = endpoint
        self.options = options
        self.subscriptions = subscriptions
        self.on_publish = on_publish
        self.backoff = backoff
        self.refused_is_fatal = refused_is_fatal
        self.on_generation = on_generation
        self.on_up = on_up
        self.on_down = on_down
        self.on_attempt = on_attempt
        self.on_window_full = on_window_full
        self.keep_properties = keep_properties
        self.gen = 0
        self.connection: Connection | None = None
        self.up = asyncio.Event()
        self.refused: list[str] = []
        self._paused = False
        self._accepted = False  # the current connection's CONNACK was read
        self._reading = asyncio.Event()  # set while not paused
        self._reading.set()

    # ------------------------------------------------------------------ controls

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop reading (backpressure or shutdown); applied from CONNACK on.

        A persistent session's queued messages follow CONNACK at once, up to Receive
        Maximum of them, and the SUBACK comes after them: a pause that waited for the
        SUBACK let all of them be read first (8,000 arrays of 50 records, 403 MB, in a
        drain). Paused before the SUBACK, the reader takes it once reading resumes."""
        self._paused = True
        self._reading.clear()
        if self.connection is not None and self._accepted:
            self.connection.pause_reading()

    def resume(self) -> None:
        self._paused = False
        self._reading.set()
        if self.connection is not None:
            self.connection.resume_reading()

    def ack(self, gen: int, packet_ids: list[int]) -> None:
        """Acknowledge handled QoS 1 messages of connection `gen` (dropped if it is gone)."""
        conn = self.connection
        if gen == self.gen and conn is not None and packet_ids:
            conn.ack(packet_ids)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> asyncio.Future[int] | None:
        """Publish on the live connection; None while there is none.

        The future gives the broker's PUBACK reason code (QoS 1; >= 0x80: refused)."""
        conn = self.connection
        if conn is None or not self.up.is_set():
            return None
        try:
            return conn.publish(topic, payload, qos, retain, properties)
        except MqttError:
            return None

    def publish_properties(self) -> Properties:
        """Properties of the PUBLISH being handled (inside `on_publish`; needs
        `keep_properties`); empty otherwise."""
        conn = self.connection
        return conn.publish_properties() if conn is not None else {}

    # ------------------------------------------------------------------ loop

    async def run(
        self, stop: asyncio.Event, drain: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Until `stop`: connect, subscribe, serve, reconnect after backoff.

        On stop: stop reading, await `drain` (commit and acknowledge what was read) while
        still connected, then DISCONNECT normally (the will is not published).

        While paused, no new connection is made: a persistent session's broker sends its
        queue right after CONNACK, before the pause could apply, so each reconnection
        while the caller cannot keep up would add a Receive Maximum of messages to what
        it holds (a connection that keeps failing would grow it without bound)."""
        attempt = 0
        while not stop.is_set():
            if self._paused:
                await _first(self._reading.wait(), stop.wait())
                if stop.is_set():
                    break
            attempt += 1
            if self.on_attempt is not None:
                self.on_attempt(attempt)
            try:
                await self._connection(stop, drain)
            except MqttError as exc:
                log.warning("MQTT connection lost or refused: %s", exc)
            except Exception:  # a bug in a hook: logged, and the session carries on
                log.exception("MQTT session failed; reconnecting")
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.backoff.next_delay())

    async def _connection(
        self, stop: asyncio.Event, drain: Callable[[], Awaitable[None]] | None
    ) -> None:
        self.gen += 1
        if self.on_generation is not None:
            self.on_generation(self.gen)
        ep = self.endpoint
        conn: Connection | None = None
        try:
            conn = Connection(self.options(), self.on_publish, self.on_window_full)
            conn.keep_properties(self.keep_properties)
            self.connection = conn  # acks may come for messages that follow CONNACK at once
            await conn.connect(ep.host, ep.port, ep.tls, ep.connect_timeout_s)
            self.backoff.reset()
            self._accepted = True
            if self._paused:
                conn.pause_reading()
            # Paused, the SUBACK may wait behind queued messages until reading resumes: a
            # stop meanwhile still drains and disconnects.
            subscribed = asyncio.ensure_future(self._subscribe(conn))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({subscribed, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if subscribed.done():
                    subscribed.result()
                    self.up.set()
                    log.info("MQTT connected to %s:%d", ep.host, ep.port)
                    if self.on_up is not None:
                        self.on_up()
                    waits: set[asyncio.Future[Any]] = {conn.closed, stopping}
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                subscribed.cancel()
            if conn.closed.done():
                raise conn.error or MqttError("connection closed")
            conn.pause_reading()
            if drain is not None:
                await drain()
            await conn.disconnect()
        finally:
            self._accepted = False
            was_up = self.up.is_set()
            self.backoff.disconnected(time.monotonic())
            self.up.clear()
            self.connection = None
            if conn is not None and not conn.closed.done():
                conn.abort()
            if self.on_down is not None:
                self.on_down(was_up)

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int] | None:
        """Subscribe on the live connection (None without one); reason codes per filter.

        Only for filters that change while connected (the API hub's devices); the
        `subscriptions` given to the session are subscribed on every connection."""
        conn = self.connection
        if conn is None or not self.up.is_set():
            return None
        return await conn.subscribe(filters)

    async def unsubscribe(self, filters: list[str]) -> list[int] | None:
        conn = self.connection
        if conn is None or not self.up.is_set():
            return None
        return await conn.unsubscribe(filters)

    async def _subscribe(self, conn: Connection) -> None:
        subs = self.subscriptions() if callable(self.subscriptions) else self.subscriptions
        codes = await conn.subscribe(subs)
        refused = [
            f"{topic} ({reason_name(code)})"
            for (topic, _), code in zip(subs, codes, strict=True)
            if code >= 0x80
        ]
        self.refused = refused
        if refused and self.refused_is_fatal:
            raise SubscriptionRefusedError(f"subscription refused: {', '.join(refused)}")
        if refused:
            log.warning("broker refused subscriptions %s", refused)


async def _first(*waits: Awaitable[Any]) -> None:
    """Until the first of `waits` is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["Endpoint", "MqttError", "RefusedError", "Session", "SubscriptionRefusedError"]
