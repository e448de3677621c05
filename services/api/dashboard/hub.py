"""One MQTT connection per API process feeding the dashboard's live streams.

It subscribes to every alarm topic, and to a device's own stream topics only while some
page watches that device. A device message goes through ingest's own pipeline (the same
decoders and clock window) and only what ingest would store is forwarded, shaped like the
device's `last` values in the API, so a live page shows what a reload shows and never a
record that ended as a dead letter (a subscription per device, not the whole firehose, so the API
never competes with ingest for the plant's message rate). However many browsers watch, the
broker sees one subscriber. The subscription starts with the first watcher and
reconnects on its own, with a growing delay while the broker stays away; no error (a broker
restart, a refused publish or subscription, a message that trips a bug) ends it, because
every project's feed hangs on this one task. Watchers learn when the broker is unreachable
(`status` events) instead of silently seeing nothing. A watcher that cannot keep up loses
its oldest events, never the other watchers' ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from services.api.observe import ApiMetrics
from services.core.contracts import STREAMS as STREAM_NAMES
from services.core.mqtt import Backoff, MqttError, Session
from services.core.mqtt.codec import check_filter
from services.core.mqtt.connection import reason_name
from services.core.runtime import mqtt_connect_options, mqtt_endpoint
from services.core.settings import Settings
from services.core.tables import STREAM_COLUMNS
from services.protocols.adapters.native import NativeAdapter
from services.protocols.alarms import alarm_filter
from services.protocols.batch import Batch
from services.protocols.pipeline import Pipeline

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
RECONNECT_S = 1.0  # first retry delay; it doubles while the broker stays away ...
RECONNECT_MAX_S = 15.0  # ... up to this
STABLE_S = 10.0  # a connection that lived this long resets the delay


MAX_RECORD_BYTES = 64 * 1024
# Columns the device API leaves out of a device's `last` values.
HIDDEN: Final = frozenset({"project_id", "device_id", "received_at"})
# JSON the way the API's response models write it (times as ISO 8601 with `Z`).
_AS_JSON: Final = TypeAdapter(Any)


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


def _judge_puback(topic: str, fut: asyncio.Future[int]) -> None:
    """Log an announcement the broker refused or that the connection lost (`announce`)."""
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("alarm announcement on %s not published: %s", topic[:200], exc)
    elif fut.result() >= 0x80:
        log.warning("alarm announcement on %s refused: %s", topic[:200],
                    reason_name(fut.result()))  # fmt: skip


class AlarmHub:
    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        """`metrics`: the app's; without them (tests) a private set nobody exports."""
        m = metrics if metrics is not None else ApiMetrics(CollectorRegistry())
        self._watching, self._fanned_out = m.live_streams, m.live_events
        self.settings = settings
        self.connected = asyncio.Event()
        self._watchers: set[Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: Session | None = None
        self._devices: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._announcing: set[asyncio.Task[None]] = set()
        self._root = settings.mqtt.topic_root
        self._depth = len(self._root.split("/"))
        self.reconnect_s = RECONNECT_S
        self.reconnect_max_s = RECONNECT_MAX_S
        self.failures = 0  # connection attempts or sessions that ended in an error
        self._pipeline = Pipeline(settings.ingest, [NativeAdapter(self._root)])

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-alarm-hub")

    def _device_filter(self, device: tuple[str, str]) -> str:
        return f"{self._root}/{device[0]}/+/{device[1]}/+"

    def watch(
        self, projects: frozenset[str] | None, device: tuple[str, str] | None = None
    ) -> Watcher:
        self._ensure_running()
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
        session = self._session
        if session is None or not session.up.is_set():
            return
        filt = self._device_filter(device)

        async def go() -> None:
            try:
                if on:
                    codes = await session.subscribe([(filt, 0)])
                    if codes and codes[0] >= 0x80:
                        log.warning("live stream: broker refused %r: %s", filt[:200],
                                    reason_name(codes[0]))  # fmt: skip
                else:
                    await session.unsubscribe([filt])
            except MqttError:
                pass  # the connection is going away; the reconnect subscribes anew
            except Exception:  # e.g. a filter the client refuses: this device only
                log.exception("live stream: could not (un)subscribe %r", filt[:200])

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
        self._ensure_running()
        if self._session is not None and self.connected.is_set():
            # Connected: publish at once and judge the PUBACK in a callback. The commands
            # route announces every command it queues (500/s in its benchmark); a task
            # (and a wait_for) per announcement was CPU the route could not spare.
            try:
                fut = self._session.publish(topic, payload, 1)
            except Exception:  # refused by the client library, as in `_publish`
                log.exception("alarm announcement on %r not published", topic[:200])
                return
            if fut is not None:
                fut.add_done_callback(lambda f: _judge_puback(topic, f))
                return
        task = asyncio.create_task(self._publish(topic, payload, wait_s))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _publish(self, topic: str, payload: bytes, wait_s: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), wait_s)
            fut = self._session.publish(topic, payload, 1) if self._session else None
            if fut is not None:
                reason = await fut
                if reason >= 0x80:
                    log.warning("alarm announcement on %s refused: %s", topic[:200],
                                reason_name(reason))  # fmt: skip
                return
        except (TimeoutError, MqttError):
            pass
        except Exception:  # refused by the client library: log it, never raise into the hub
            log.exception("alarm announcement on %r not published", topic[:200])
            return
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
            self._record(topic, project, rest, payload)
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

    def _record(self, topic: str, project: str, rest: list[str], payload: bytes) -> None:
        """A device message as ingest stores it, for its watchers; nothing if ingest would not."""
        kind, device, stream = rest
        watchers = [w for w in self._watchers if w.device == (project, device)]
        if not watchers or len(payload) > MAX_RECORD_BYTES or stream not in STREAM_NAMES:
            return  # a status message, or a stream ingest has no table for: no records
        records = self.accepted(topic, payload)
        if records is None:
            self._fanned_out.labels("rejected").inc()
            return
        data: dict[str, Any] = {"project": project, "kind": kind, "device": device}
        data |= {"stream": stream, "records": records}
        self._fanned_out.labels("record").inc()
        for w in watchers:
            w.offer("record", data)

    def accepted(self, topic: str, payload: bytes) -> list[dict[str, Any]] | None:
        """The records ingest would store from this message, each shaped like the device's
        `last` entry of its stream (telemetry: `{metric: {value, ts}}`), or None if ingest
        would dead-letter the message (or it holds no stream records, like a status)."""
        batch = Batch(0)
        self._pipeline.fill(batch, topic, payload, datetime.now(UTC), 0, 0, False)
        if batch.dead or len(batch.rows) != 1:
            return None
        ((table, rows),) = batch.rows.items()
        columns = STREAM_COLUMNS[table]
        out: list[dict[str, Any]] = []
        for row in rows:
            rec = dict(zip(columns, row, strict=True))
            if table == "telemetry":
                out.append({rec["metric"]: {"value": rec["value"], "ts": rec["ts"]}})
                continue
            if isinstance(rec.get("defects"), str):  # stored as JSONB, read back as a list
                rec["defects"] = orjson.loads(rec["defects"])
            out.append({k: v for k, v in rec.items() if k not in HIDDEN})
        result: list[dict[str, Any]] = _AS_JSON.dump_python(out, mode="json")
        return result

    def _status(self, live: bool) -> None:
        for w in self._watchers:
            w.offer("status", {"live": live})

    def _subscriptions(self) -> list[tuple[str, int]]:
        """The alarm filter and every watched device's, asked anew on each connection."""
        subs = [(alarm_filter(self.settings.mqtt.topic_root), 1)]
        for device in list(self._devices):
            filt = self._device_filter(device)
            try:
                check_filter(filt)
            except ValueError:  # one device the client refuses must not stop the others
                log.warning("live stream: not a valid filter for device %r", device)
                continue
            subs.append((filt, 0))
        return subs

    def _up(self) -> None:
        self.connected.set()
        self._status(True)

    def _down(self, was_up: bool) -> None:
        self.failures += 1  # the hub's connection only ends in an error (or on close)
        if self.connected.is_set():
            self.connected.clear()
            self._status(False)

    async def _run(self) -> None:
        client_id = f"factory5g-api-live-{uuid.uuid4().hex[:12]}"

        def on_publish(topic: str, payload: bytes, mid: int, qos: int) -> None:
            self._dispatch_safely(topic, payload)
            if qos:  # QoS 1 alarms: acknowledged once dispatched
                session.ack(session.gen, [mid])

        session = Session(
            mqtt_endpoint(self.settings),
            lambda: mqtt_connect_options(self.settings, client_id, clean_start=True),
            self._subscriptions,
            lambda topic, payload, mid, qos, dup: on_publish(topic, payload, mid, qos),
            Backoff(self.reconnect_s, self.reconnect_max_s, jitter=False, stable_s=STABLE_S),
            refused_is_fatal=False,
            on_up=self._up,
            on_down=self._down,
        )
        self._session = session
        try:
            await session.run(asyncio.Event())  # until cancelled by `close`
        finally:
            self._session = None

    def _dispatch_safely(self, topic: str, payload: Any) -> None:
        try:
            self.dispatch(topic, bytes(payload))
        except Exception:  # one message that trips a bug costs that message only
            self._fanned_out.labels("failed").inc()
            log.exception("live stream: message on %r not dispatched", topic[:200])
