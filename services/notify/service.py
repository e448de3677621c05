"""`factory5g notify`: the notifier process.

Four loops on one event loop share a wake-up event:
- router: outbox -> deliveries, woken by the outbox trigger's NOTIFY (LISTEN on a
  connection of its own) or by the poll interval as a fallback;
- dispatcher: claims due deliveries up to `concurrency` in flight, sends each in a task,
  records the outcome; sleeps until the next wake-up, poll or earliest retry;
- escalation: every `escalation_interval_s`, enqueues due policy steps and reminders;
- gauges: queue depth and the oldest undelivered age, for /metrics and the chart's alert.
Any number of notifiers may run against one database (see dispatcher.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.core import heap
from services.core.db import asyncpg_dsn
from services.core.metrics import MetricsServer, service_registry
from services.core.runtime import cancel_and_wait, run_async
from services.core.settings import Settings
from services.notify import dispatcher, escalation, registry, router
from services.notify.metrics import NotifyMetrics
from services.protocols.notify.message import Outcome
from services.protocols.notify.targets import Targets

log = logging.getLogger("factory5g.notify")

CHANNEL = "factory5g_notify"
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_GAUGES_SQL = """
SELECT (SELECT count(*) FROM notify_outbox WHERE routed_at IS NULL)
     + (SELECT count(*) FROM notify_deliveries WHERE state IN ('queued', 'sending', 'failed'))
       AS depth,
       extract(epoch FROM now() - least(
           (SELECT min(event_ts) FROM notify_outbox WHERE routed_at IS NULL),
           (SELECT min(event_ts) FROM notify_deliveries
            WHERE state IN ('queued', 'sending', 'failed')))) AS oldest
"""

_NEXT_DUE_SQL = """
SELECT extract(epoch FROM min(CASE WHEN state = 'sending' THEN lease_until
                                   ELSE next_attempt_at END) - now())
FROM notify_deliveries WHERE state IN ('queued', 'sending', 'failed')
"""


class NotifyService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.notify
        registry.configure(Targets(self.cfg.allow_private_targets))
        self.metrics = NotifyMetrics(service_registry())
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.route_wake = asyncio.Event()
        self.send_wake = asyncio.Event()
        self.db_ok = False
        self.listening = False
        self.in_flight: set[asyncio.Task[None]] = set()
        self.results: list[tuple[dispatcher.Result, asyncio.Future[None]]] = []
        self.record_wake = asyncio.Event()

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.db_ok, {
            "database": self.db_ok,
            "listening": self.listening,
            "in_flight": len(self.in_flight),
        }

    def wake(self, *_: Any) -> None:
        # A transition to route, or a delivery the API enqueued itself (a test notice).
        self.route_wake.set()
        self.send_wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        # The notifier's own commits (routing, claims, outcomes) do not wait for the WAL
        # flush: a database crash can lose the last fraction of a second of them, which
        # means routing those items again (the idempotency keys absorb it) or sending a
        # notification again (at-least-once, de-duplicated by the receiver). The outbox rows
        # themselves commit with the alarm transition, durably.
        pool = await asyncpg.create_pool(
            asyncpg_dsn(s.database.url),
            min_size=1,
            max_size=max(2, min(s.database.pool_max, 4)),
            timeout=s.database.connect_timeout_s,
            server_settings={"synchronous_commit": "off"},
        )
        server = MetricsServer(
            self.cfg.metrics_host, self.cfg.metrics_port, self.health, self.metrics.registry
        )
        await server.start()
        recorder = asyncio.create_task(self._record_loop(pool, stop), name="notify-record")
        loops = [
            asyncio.create_task(self._router_loop(pool, stop), name="notify-router"),
            asyncio.create_task(self._dispatch_loop(pool, stop), name="notify-dispatch"),
            asyncio.create_task(self._escalation_loop(pool, stop), name="notify-escalation"),
            asyncio.create_task(self._gauge_loop(pool, stop), name="notify-gauges"),
        ]
        if self.cfg.listen:
            loops.append(asyncio.create_task(self._listen_loop(stop), name="notify-listen"))
        try:
            await stop.wait()
        finally:
            for task in loops:
                await cancel_and_wait(task)
            # Sends under way finish (or time out) and are recorded; their leases would
            # otherwise make them wait lease_s to be sent again.
            if self.in_flight:
                await asyncio.wait(self.in_flight, timeout=self.cfg.send_timeout_s + 5)
            await cancel_and_wait(recorder)
            await server.stop()
            await pool.close()
            await registry.close()

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until `event` or `seconds`; then a short pause gathers what else arrives into
        the same statement (fewer commits under load, at most batch_delay_ms later)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        if self.cfg.batch_delay_ms > 0:
            await asyncio.sleep(self.cfg.batch_delay_ms / 1000)
        event.clear()

    async def _listen_loop(self, stop: asyncio.Event) -> None:
        """Keep a LISTEN connection; on loss, reconnect (the poll covers the gap)."""
        s = self.settings
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    asyncpg_dsn(s.database.url), timeout=s.database.connect_timeout_s
                )
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, ev=closed: ev.set())
                await conn.add_listener(CHANNEL, self.wake)
                self.listening = True
                self.route_wake.set()  # anything written while not listening
                while not closed.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), timeout=10.0)
                    if not closed.is_set():
                        await conn.execute("SELECT 1")  # finds a connection dead silently
            except _DB_ERRORS as exc:
                log.warning("LISTEN connection lost: %s", exc)
            finally:
                self.listening = False
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(1.0)

    async def _router_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with pool.acquire() as conn:
                    while True:
                        items, new = await router.route_batch(
                            conn, self.cfg.batch_size, self.cfg.give_up_after_s
                        )
                        self.db_ok = True
                        if items:
                            self.metrics.routed.inc(items)
                        if new:
                            self.send_wake.set()
                        if items < self.cfg.batch_size:
                            break
            except _DB_ERRORS as exc:
                self.db_ok = False
                log.warning("routing failed (retried): %s", exc)
            await self._wait(self.route_wake, self.cfg.poll_interval_s)

    async def _dispatch_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        cfg = self.cfg
        while not stop.is_set():
            timeout = cfg.poll_interval_s
            try:
                free = cfg.concurrency - len(self.in_flight)
                if free > 0:
                    async with pool.acquire() as conn:
                        rows = await dispatcher.claim(
                            conn, min(free, cfg.batch_size), self.token, cfg.lease_s
                        )
                        for row in rows:
                            task = asyncio.create_task(self._deliver(row))
                            self.in_flight.add(task)
                            task.add_done_callback(self._done)
                        if len(rows) == min(free, cfg.batch_size):
                            continue  # more may be due
                        due = await conn.fetchval(_NEXT_DUE_SQL)
                        if due is not None:
                            timeout = min(timeout, max(0.01, float(due)))
            except _DB_ERRORS as exc:
                self.db_ok = False
                log.warning("claiming deliveries failed (retried): %s", exc)
            await self._wait(self.send_wake, timeout)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.send_wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def _deliver(self, row: dict[str, Any]) -> None:
        """Send one claimed delivery and hand its outcome to the recorder; the task (and
        its concurrency slot) ends when the outcome is stored."""
        cfg = self.cfg
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(
                dispatcher.send_one(row, cfg.dashboard_url), timeout=cfg.send_timeout_s
            )
        except TimeoutError:
            outcome = Outcome(ok=False, retryable=True, status="timeout")
        duration_ms = (time.perf_counter() - started) * 1000
        state, next_at = dispatcher.next_state(
            outcome, row["attempts"], row["give_up_at"], cfg.retry_base_s, cfg.retry_max_s
        )
        done = asyncio.get_running_loop().create_future()
        self.results.append((dispatcher.Result(row, outcome, state, next_at, duration_ms), done))
        self.record_wake.set()
        await done
        if not outcome.ok:
            log.info(
                "delivery %s (%s) %s: %s %s",
                row["id"],
                row["idempotency_key"],
                state,
                outcome.status,
                outcome.answer[:200],
            )

    async def _record_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Outcomes in batches, one statement each: per delivery, a round trip of its own
        would bound the notifier at a few hundred deliveries per second."""
        while True:
            await self._wait(self.record_wake, 3600.0)
            while self.results:
                batch, self.results = self.results[:1000], self.results[1000:]
                for attempt in range(10):
                    try:
                        async with pool.acquire() as conn:
                            kept = await dispatcher.record(conn, [r for r, _ in batch], self.token)
                        break
                    except _DB_ERRORS as exc:
                        log.warning("recording %d outcomes failed: %s", len(batch), exc)
                        await asyncio.sleep(0.5 * (attempt + 1))
                else:
                    kept = set()  # their leases run out and they are sent again
                now = datetime.now(UTC)
                for result, done in batch:
                    row = result.row
                    mine = row["id"] in kept
                    label = result.state if mine else "lost_claim"
                    self.metrics.deliveries.labels(row["channel_type"], label).inc()
                    if mine and result.state == "sent":
                        age = (now - row["event_ts"]).total_seconds()
                        self.metrics.latency.observe(max(0.0, age))
                    if not done.done():
                        done.set_result(None)

    async def _escalation_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with pool.acquire() as conn:
                    await escalation.enqueue_due(conn)
            except _DB_ERRORS as exc:
                log.warning("escalation check failed (retried): %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.cfg.escalation_interval_s)

    async def _gauge_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with pool.acquire() as conn:
                    row = await conn.fetchrow(_GAUGES_SQL)
                if row is not None:
                    self.metrics.queue_depth.set(row["depth"] or 0)
                    self.metrics.oldest_undelivered.set(float(row["oldest"] or 0))
            except _DB_ERRORS as exc:
                log.warning("queue gauges failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(1.0, self.cfg.poll_interval_s))


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    service = NotifyService(settings)
    log.info("notifier %s started", service.token)
    await service.run(stop)


def run(settings: Settings) -> None:
    """Entry point of `factory5g notify`."""
    heap.settle()
    run_async(serve(settings), settings.log_level)
