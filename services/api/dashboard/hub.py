"""One MQTT subscription to every alarm topic, fanned out to the dashboard's live streams.

Each API process holds a single broker connection however many browsers watch, so a wall of
screens costs the broker one subscriber. The subscription starts with the first watcher and
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
from prometheus_client import Counter, Gauge

from services.core.metrics import metric_name
from services.core.runtime import mqtt_client_kwargs
from services.core.settings import Settings
from services.rules.publisher import alarm_filter

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
RECONNECT_S = 1.0

WATCHERS = Gauge(metric_name("api", "live_streams"), "Open dashboard live streams.")
EVENTS = Counter(
    metric_name("api", "live_events"), "Alarm events fanned out to live streams.", ["kind"]
)


@dataclass(eq=False)
class Watcher:
    projects: frozenset[str] | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX)
    )

    def offer(self, event: str, data: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait((event, data))


class AlarmHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connected = asyncio.Event()
        self._watchers: set[Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._depth = len(settings.mqtt.topic_root.split("/"))

    def watch(self, projects: frozenset[str] | None) -> Watcher:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-alarm-hub")
        w = Watcher(projects)
        self._watchers.add(w)
        WATCHERS.inc()
        return w

    def leave(self, w: Watcher) -> None:
        if w in self._watchers:
            self._watchers.discard(w)
            WATCHERS.dec()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def dispatch(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) <= self._depth:
            return
        project = parts[self._depth]
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            EVENTS.labels("malformed").inc()
            return
        if not isinstance(body, dict):
            EVENTS.labels("malformed").inc()
            return
        body["project"] = project  # the topic is authoritative for visibility
        EVENTS.labels("alarm").inc()
        for w in self._watchers:
            if w.projects is None or project in w.projects:
                w.offer("alarm", body)

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
                    self.connected.set()
                    self._status(True)
                    async for msg in client.messages:
                        self.dispatch(str(msg.topic), bytes(msg.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError as exc:
                log.warning("alarm stream: broker unreachable (%s); retrying", exc)
            if self.connected.is_set():
                self.connected.clear()
                self._status(False)
            await asyncio.sleep(RECONNECT_S)
