"""Decode one MQTT message into a batch: stream rows, a dead letter, device updates.

This is the per-message half of the hot path and runs synchronously inside the MQTT
reader, so it allocates little and never awaits. Every rejection, whatever the adapter,
ends up as one dead-letter row with a `Reason` code, filed under the project and device
its topic names (as far as the topic says: `Attribution` in `adapters/base.py`). A valid
message's records, and the time of any online/offline change it carries, are checked
against the clock window (`max_past_s`, `max_future_s`) before any row is built, so a
message lands whole or not at all; the exception is what an adapter reports as partly
dropped (`AdapterResult.rejected`), which lands as extra dead letters next to the rows.

Fast path: what a native stream topic means (adapter, shard, project, device, table, row
builder) is worked out once per topic string and cached (`_Route`), and its messages go
through one generated function per stream (`rows.FAST_BUILDERS`) that decodes, converts,
checks the window and builds rows in one go. Whatever that function cannot accept as is
(a rejection, an RFC 3339 time near the window's edge, NUL, an oversize payload, an
unknown device) takes the exact path below, which decides and explains it; so the fast
path changes the cost of a message, never its outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from services.core.contracts import ContractError, Decoded, Reason, Topic, parse_ts
from services.core.settings import IngestSettings
from services.protocols.adapters.base import Adapter, AdapterResult, Command
from services.protocols.adapters.native import REPLY, STATUS, NativeAdapter
from services.protocols.batch import Batch
from services.protocols.deadletter import dead_letter_row, oversize
from services.protocols.rows import BUILDERS, FAST_BUILDERS, FastBuilder

log = logging.getLogger(__name__)

_ROUTE_CACHE_MAX: Final = 200_000
# Narrows the fast path's window by this much (ms) on each side, so that float rounding of
# the bounds can never let through a time the exact check refuses; a record this close to
# an edge simply takes the exact path.
_EDGE_MS: Final = 2.0
_NUL_ESCAPE: Final = b"\\u0000"


class _Route:
    """What a native stream topic means, worked out once per topic string."""

    __slots__ = ("build", "device", "key", "kind", "project", "table")

    def __init__(self, t: Topic, table: str, build: FastBuilder) -> None:
        self.project = t.project
        self.device = t.device
        self.kind = t.kind
        self.key = (t.project, t.device)
        self.table = table
        self.build = build


# Cached meanings of a topic besides a `_Route`: another replica's device; the exact path.
_SKIP: Final = "skip"
_EXACT: Final = "exact"


class Pipeline:
    def __init__(
        self,
        settings: IngestSettings,
        adapters: list[Adapter],
        publish: Callable[[Command], None] = lambda _c: None,
        known: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.max_payload = settings.max_payload_bytes
        self.max_past = timedelta(seconds=settings.max_past_s)
        self.max_future = timedelta(seconds=settings.max_future_s)
        self.adapters = adapters
        self.publish = publish
        # Whether (project, device) is registered; None: every device is accepted.
        self.known = known
        self._routes: dict[str, Adapter | None] = {}
        self._fast: dict[str, _Route | str] = {}
        self._past_ms = settings.max_past_s * 1000 - _EDGE_MS
        self._future_ms = settings.max_future_s * 1000 - _EDGE_MS

    def route(self, topic: str) -> Adapter | None:
        adapter = self._routes.get(topic, False)
        if adapter is False:
            adapter = next((a for a in self.adapters if a.matches(topic)), None)
            if len(self._routes) >= _ROUTE_CACHE_MAX:
                self._routes.clear()
            self._routes[topic] = adapter
        return adapter  # type: ignore[return-value]

    def attribute(self, topic: str) -> tuple[str | None, str | None]:
        """(project, device) a rejected message's topic names, as far as its adapter can tell."""
        adapter = self.route(topic)
        attribute = getattr(adapter, "attribute", None)
        if attribute is None:
            return None, None
        try:
            project, device = attribute(topic)
        except Exception:  # a dead letter without its device beats a lost one
            log.exception("attributing topic %r failed", topic[:200])
            return None, None
        return project, device

    def fill(
        self,
        b: Batch,
        topic: str,
        payload: bytes,
        received: datetime,
        mid: int,
        qos: int,
        dup: bool,
    ) -> None:
        """Put one message into batch `b`; it is acknowledged when `b` commits."""
        if qos:
            b.mids.append(mid)
        route = self._fast.get(topic)
        if route is None:
            route = self._learn(topic)
        if route is _SKIP:
            return  # another replica's device (ingest.shard_count): acknowledged, stored there
        if (
            type(route) is _Route
            and len(payload) <= self.max_payload
            and _NUL_ESCAPE not in payload
            and self._fast_fill(b, route, topic, payload, received)
        ):
            if dup:
                b.dup = True
            return
        self._fill_exact(b, topic, payload, received, dup)

    def _learn(self, topic: str) -> _Route | str:
        """What `topic` means to the fast path (cached per topic string)."""
        adapter = self.route(topic)
        route: _Route | str = _EXACT
        if isinstance(adapter, NativeAdapter):
            if not adapter.owns(topic):
                route = _SKIP
            else:
                try:
                    t = adapter.topic(topic)
                except ContractError:
                    t = None
                fast = FAST_BUILDERS.get(t.stream) if t is not None else None
                if t is not None and fast is not None:
                    route = _Route(t, *fast)
        if len(self._fast) >= _ROUTE_CACHE_MAX:
            self._fast.clear()
        self._fast[topic] = route
        return route

    def _fast_fill(
        self, b: Batch, route: _Route, topic: str, payload: bytes, received: datetime
    ) -> bool:
        """Rows of a native stream message in one go; False: take the exact path."""
        known = self.known
        if known is not None and not known(route.project, route.device):
            return False
        out = b.rows.get(route.table)
        if out is None:
            out = b.rows[route.table] = []
        before = len(out)
        now_ms = received.timestamp() * 1000
        try:
            route.build(
                payload,
                route.project,
                route.device,
                now_ms - self._past_ms,
                now_ms + self._future_ms,
                received,
                out,
                self._slow_ts,
            )
        except Exception:  # any refusal: the exact path decides and explains it
            del out[before:]
            if not out:
                del b.rows[route.table]
            return False
        if len(out) == before:  # nothing to store (the contract forbids it): be exact
            if not out:
                del b.rows[route.table]
            return False
        b.sources.append((topic, payload, received))
        b.nbytes += len(payload)
        b.nrows += len(out) - before
        b.spans.append((len(b.sources) - 1, route.table, before, len(out)))
        b.lags.append(out[before][0])
        b.touches[route.key] = (route.kind, True, received)
        return True

    def _slow_ts(self, value: str | int, received: datetime) -> datetime:
        """A record time the fast bounds do not settle: converted and checked exactly."""
        if value.__class__ is not str:
            raise ValueError("epoch ms near or outside the window")
        ts = parse_ts(value)
        self._check_window(ts, ts, received)
        return ts

    def _fill_exact(
        self, b: Batch, topic: str, payload: bytes, received: datetime, dup: bool
    ) -> None:
        """Any message, each check spelled out; rejections become dead letters."""
        adapter = self.route(topic)
        b.sources.append((topic, payload, received))
        b.nbytes += len(payload)
        if dup:
            b.dup = True
        t: Topic | None = None
        try:
            if len(payload) > self.max_payload:
                raise oversize(len(payload), self.max_payload)
            if adapter is None:
                raise ContractError(Reason.BAD_TOPIC, "no adapter handles this topic")
            if isinstance(adapter, NativeAdapter):
                t = adapter.topic(topic)
                if t.stream == REPLY:
                    return  # a command reply: the commander records it, nothing to store
                if t.stream != STATUS:
                    self._check_known(t.project, t.device)
                    decoded = adapter.decode_stream(t, payload)
                    self._check_times(decoded, received)
                    self._add_rows(b, t, decoded, received)
                    return
            result = adapter.decode(topic, payload, received)
            self._add_result(b, result, received)
            for err in result.rejected:
                self._dead(b, topic, payload, received, err, None)
        except ContractError as exc:
            self._dead(b, topic, payload, received, exc, t)
        except Exception as exc:  # an adapter bug must not stop the service
            log.exception("adapter failed on topic %r", topic[:200])
            err = ContractError(Reason.PROTOCOL, f"adapter error: {type(exc).__name__}: {exc}")
            self._dead(b, topic, payload, received, err, t)

    def _add_result(self, b: Batch, result: AdapterResult, received: datetime) -> None:
        for t, decoded in result.items:
            if t.stream not in BUILDERS:
                raise ContractError(Reason.UNKNOWN_STREAM, f"stream {t.stream!r} has no table")
            self._check_known(t.project, t.device)
            self._check_times(decoded, received)
        for ev in result.events:
            self._check_known(ev.project, ev.device)
            # A status time from the far future would win over every later change (the
            # registry keeps the newest) and pin the device; the same window as records.
            self._check_window(ev.at, ev.at, received)
        for t, decoded in result.items:
            self._add_rows(b, t, decoded, received)
        for ev in result.events:
            b.touches[(ev.project, ev.device)] = (ev.kind, ev.online, ev.at)
        for cmd in result.commands:
            self.publish(cmd)

    def _check_known(self, project: str, device: str) -> None:
        if self.known is not None and not self.known(project, device):
            raise ContractError(
                Reason.UNKNOWN_DEVICE,
                f"device {project}/{device} is not registered (ingest.unknown_devices is "
                "dead_letter): register it through the API",
            )

    def _check_times(self, decoded: Decoded, received: datetime) -> None:
        times = decoded.times
        if len(times) == 1:
            lo = hi = times[0]
        else:
            lo, hi = min(times), max(times)
        self._check_window(lo, hi, received)

    def _check_window(self, lo: datetime, hi: datetime, received: datetime) -> None:
        if hi > received + self.max_future:
            raise ContractError(
                Reason.TS_FUTURE,
                f"ts {hi.isoformat()} is more than {self.max_future.total_seconds():g}s "
                f"after the receive time {received.isoformat()}",
            )
        if lo < received - self.max_past:
            raise ContractError(
                Reason.TS_PAST,
                f"ts {lo.isoformat()} is more than {self.max_past.total_seconds():g}s "
                f"before the receive time {received.isoformat()}",
            )

    def _add_rows(self, b: Batch, t: Topic, decoded: Decoded, received: datetime) -> None:
        table, build = BUILDERS[t.stream]  # native topics only name known streams
        out = b.rows.get(table)
        if out is None:
            out = b.rows[table] = []
        before = len(out)
        build(t.project, t.device, decoded.records, decoded.times, received, out)
        b.nrows += len(out) - before
        b.spans.append((len(b.sources) - 1, table, before, len(out)))
        b.lags.append(decoded.times[0])
        b.touches[(t.project, t.device)] = (t.kind, True, received)

    def _dead(
        self,
        b: Batch,
        topic: str,
        payload: bytes,
        received: datetime,
        exc: ContractError,
        t: Topic | None,
    ) -> None:
        project, device = (t.project, t.device) if t is not None else self.attribute(topic)
        b.dead.append(dead_letter_row(received, topic, payload, exc, project, device))
        b.nrows += 1
        reason = exc.reason.value
        b.rejected[reason] = b.rejected.get(reason, 0) + 1
