"""One MQTT connection per API process feeding the dashboard's live streams.

It subscribes to every alarm topic, and to a device's own stream topics only while some
page watches that device (a subscription per device, not the whole firehose, so the API
never competes with ingest for the plant's message rate). However many browsers watch, the
broker sees one subscriber. The subscription starts with the first watcher and
reconnects on its own; watchers learn when the broker is unreachable (`status` events)
instead of silently seeing nothing. A watcher that cannot keep up loses its oldest events,
never the other watchers' ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
from prometheus_client import CollectorRegistry

from services.api.observe import ApiMetrics
from services.core.runtime import mqtt_client_kwargs
from services.core.settings import Settings
from services.rules.publisher import alarm_filter

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
RECONNECT_S = 1.0


MAX_RECORD_BYTES = 64 * 1024


@dataclass(eq=False)
class Watcher:
    projects: frozenset[str] | None
    device: tuple[str, str] | None = None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX)
    )

    def offer(self, event: str, data: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait((event, data))


class AlarmHub:
    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        """`metrics`: the app's; without them (tests) a private set nobody exports."""
        m = metrics if metrics is not None else ApiMetrics(CollectorRegistry())
        self._watching, self._fanned_out = m.live_streams, m.live_events
        self.settings = settings
        self.connected = asyncio.Event()
        self._watchers: set[Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._devices: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._announcing: set[asyncio.Task[None]] = set()
        self._root = settings.mqtt.topic_root
        self._depth = len(self._root.split("/"))

    def _device_filter(self, device: tuple[str, str]) -> str:
        return f"{self._root}/{device[0]}/+/{device[1]}/+"

    def watch(
        self, projects: frozenset[str] | None, device: tuple[str, str] | None = None
    ) -> Watcher:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-alarm-hub")
        w = Watcher(projects, device)
        self._watchers.add(w)
        self._watching.inc()
        if device is not None:
            self._devices[device] = self._devices.get(device, 0) + 1
            if self._devices[device] == 1:
                self._resubscribe(device, True)
        return w

    def leave(self, w: Watcher) -> None:
        if w in self._watchers:
            self._watchers.discard(w)
            self._watching.dec()
            if w.device is not None:
                self._devices[w.device] -= 1
                if not self._devices[w.device]:
                    del self._devices[w.device]
                    self._resubscribe(w.device, False)

    def _resubscribe(self, device: tuple[str, str], on: bool) -> None:
        """(Un)subscribe a device's streams now if connected; a reconnect does it anyway."""
        client = self._client
        if client is None:
            return
        filt = self._device_filter(device)
        coro = client.subscribe(filt, qos=0) if on else client.unsubscribe(filt)

        async def go() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                await coro

        task = asyncio.create_task(go())
        self._pending[device] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._pending.get(device) is t:
                del self._pending[device]

        task.add_done_callback(done)

    async def subscribed(self, device: tuple[str, str]) -> None:
        """Returns once a device subscription asked for on a live connection is in place."""
        task = self._pending.get(device)
        if task is not None:
            await asyncio.shield(task)

    def announce(self, topic: str, payload: bytes, wait_s: float = 10.0) -> None:
        """Publish in the background on the hub's connection (QoS 1), best effort.

        The API publishes the alarm transitions operators cause, like the rules service
        publishes its own, so every subscriber (and every other API process) sees them. The
        transition is already stored; a broker outage delays or drops only the announcement
        and never the response.
        """
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-alarm-hub")
        task = asyncio.create_task(self._publish(topic, payload, wait_s))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _publish(self, topic: str, payload: bytes, wait_s: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), wait_s)
            if self._client is not None:
                await self._client.publish(topic, payload, qos=1)
                return
        except (TimeoutError, aiomqtt.MqttError):
            pass
        log.warning("alarm announcement on %s not published: broker unreachable", topic)

    async def close(self) -> None:
        for task in list(self._announcing):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def dispatch(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) <= self._depth:
            return
        project = parts[self._depth]
        rest = parts[self._depth + 1 :]
        if len(rest) == 3 and rest[0] != "alarms":
            self._record(project, rest, payload)
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._fanned_out.labels("malformed").inc()
            return
        if not isinstance(body, dict):
            self._fanned_out.labels("malformed").inc()
            return
        body["project"] = project  # the topic is authoritative for visibility
        self._fanned_out.labels("alarm").inc()
        for w in self._watchers:
            if w.projects is None or project in w.projects:
                w.offer("alarm", body)

    def _record(self, project: str, rest: list[str], payload: bytes) -> None:
        """A device message as published (a record or a list of them), for its watchers."""
        kind, device, stream = rest
        watchers = [w for w in self._watchers if w.device == (project, device)]
        if not watchers or len(payload) > MAX_RECORD_BYTES:
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._fanned_out.labels("malformed").inc()
            return
        records = body if isinstance(body, list) else [body]
        data: dict[str, Any] = {"project": project, "kind": kind, "device": device}
        data |= {"stream": stream, "records": [r for r in records if isinstance(r, dict)]}
        self._fanned_out.labels("record").inc()
        for w in watchers:
            w.offer("record", data)

    def _status(self, live: bool) -> None:
        for w in self._watchers:
            w.offer("status", {"live": live})

    async def _run(self) -> None:
        client_id = f"factory5g-api-live-{uuid.uuid4().hex[:12]}"
        filt = alarm_filter(self.settings.mqtt.topic_root)
        while True:
            try:
                kwargs = mqtt_client_kwargs(
                    self.settings, client_id, protocol=aiomqtt.ProtocolVersion.V5
                )
                async with aiomqtt.Client(**kwargs) as client:
                    await client.subscribe(filt, qos=1)
                    for device in list(self._devices):
                        await client.subscribe(self._device_filter(device), qos=0)
                    self._client = client
                    self.connected.set()
                    self._status(True)
                    async for msg in client.messages:
                        self.dispatch(str(msg.topic), bytes(msg.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError as exc:
                log.warning("alarm stream: broker unreachable (%s); retrying", exc)
            finally:
                self._client = None
            if self.connected.is_set():
                self.connected.clear()
                self._status(False)
            await asyncio.sleep(RECONNECT_S)
