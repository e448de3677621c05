"""Batches into TimescaleDB: binary COPY, idempotent on redelivery, retried until committed.

Each of `writers` workers owns one connection and writes one batch per transaction:
stream rows by COPY, dead letters by COPY, then the device upsert, then COMMIT, and only
then the batch's messages are acknowledged (`on_committed`).

Idempotence: the optimistic path COPYs straight into the hypertables. If that hits the
unique natural key (a QoS 1 redelivery, or a device repeating a record) the transaction
is rolled back and the batch is written again through per-connection temp staging tables
with `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, which also absorbs duplicates inside
the batch. Batches known to hold redeliveries (MQTT DUP flag) take that path at once.

Failures: connection-level and other transient errors are retried with exponential
backoff for as long as it takes, the messages staying unacknowledged, which with the MQTT
receive maximum holds the broker back.

Failover: with a multi-host URL (`target_session_attrs=read-write`) a reconnect reaches
whichever member is the primary now, so an uncommitted batch is simply written again
there. A batch whose COMMIT was sent but never answered (the primary died meanwhile) may
or may not be stored: it is written again like any other, and if it was committed (with a
synchronous standby, a commit the old primary confirmed is on the promoted one) the
unique keys turn the optimistic COPY into the idempotent path, so it is stored once.
Each new connection notes the server it reached (`PrimaryWatch`); another server than
before counts as a failover. Errors that blame the data itself (a value
PostgreSQL refuses) would fail forever, so the batch is split and written message by
message; the messages PostgreSQL still refuses go to the dead-letter table instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg
import asyncpg.exceptions
from asyncpg.exceptions import _base as asyncpg_base

from services.core.contracts import ContractError, Reason
from services.core.db import SERVER_SQL, PrimaryWatch, asyncpg_dsn
from services.core.streams import INGEST_DEFS
from services.ingest.devices import UPSERT_SQL
from services.ingest.metrics import IngestMetrics
from services.protocols import deadletter
from services.protocols.batch import Batch

log = logging.getLogger(__name__)

IDLE_PING_S: Final = 2.0
BACKOFF_MIN_S: Final = 0.2
# Capped at 2 s: a failover ends when the new primary is promoted, and each second of
# backoff past that is a second more without commits (fault-db-failover measured the first
# commit on the new primary; an attempt against a dead or read-only member costs one
# refused connection or one short-lived session).
BACKOFF_MAX_S: Final = 2.0
LAG_SAMPLES: Final = 32
# From the stream definitions the tables are built of (`tables.STREAM_COLUMNS` is the same
# thing), without importing SQLAlchemy's table metadata: that cost ingest 0.6 s at start.
STREAM_OF_TABLE: Final = {d.table: stream for stream, d in INGEST_DEFS.items()}
STREAM_COLUMNS: Final = {d.table: d.column_names for d in INGEST_DEFS.values()}

# Errors that blame the rows, not the database: retrying cannot help.
POISON: Final = (
    asyncpg.exceptions.DataError,  # SQLSTATE class 22
    asyncpg_base.DataError,  # asyncpg could not encode a value
    asyncpg.exceptions.NotNullViolationError,
    asyncpg.exceptions.CheckViolationError,
    asyncpg.exceptions.ForeignKeyViolationError,
)


class _Conn:
    """One worker's connection and the staging tables created on it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.staged: set[str] = set()


class Writer:
    def __init__(
        self,
        database_url: str,
        writers: int,
        connect_timeout_s: float,
        metrics: IngestMetrics,
        on_committed: Callable[[Batch], None],
        on_backlog: Callable[[bool], None] = lambda _high: None,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.writers = writers
        self.connect_timeout_s = connect_timeout_s
        self.metrics = metrics
        self.on_committed = on_committed
        self.on_backlog = on_backlog
        self.queue: asyncio.Queue[Batch] = asyncio.Queue()
        self.backlog_limit = writers
        self.database_ok = False
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: list[_Conn | None] = [None] * writers
        self._connected_once = [False] * writers
        self.primary = PrimaryWatch()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._worker(i)) for i in range(self.writers)]

    def submit(self, batch: Batch) -> None:
        self._pending += 1
        self._idle.clear()
        self.queue.put_nowait(batch)
        if self.queue.qsize() >= self.backlog_limit:
            self.on_backlog(True)

    @property
    def pending(self) -> int:
        """Batches submitted and not yet committed."""
        return self._pending

    async def drain(self) -> None:
        """Wait until every submitted batch is committed."""
        await self._idle.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for slot in self._conns:
            if slot is not None:
                slot.conn.terminate()
        self._conns = [None] * self.writers

    # ------------------------------------------------------------------ workers

    async def _worker(self, index: int) -> None:
        # Connect now, while the consumer connects to the broker: the first batch then
        # finds its connection open (it was opened on that batch, after the backlog began).
        await self._ping(index)
        while True:
            try:
                batch = await asyncio.wait_for(self.queue.get(), IDLE_PING_S)
            except TimeoutError:
                await self._ping(index)
                continue
            if self.queue.qsize() < self.backlog_limit:
                self.on_backlog(False)
            started = time.perf_counter()
            counts = await self._commit(index, batch)
            elapsed = time.perf_counter() - started
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()
            self._account(batch, counts, elapsed)
            self.on_committed(batch)

    async def _connect(self, index: int) -> _Conn:
        slot = self._conns[index]
        if slot is not None and not slot.conn.is_closed():
            return slot
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout_s,
            server_settings={"application_name": "factory5g-ingest"},
        )
        try:
            server = str(await conn.fetchval(SERVER_SQL, timeout=self.connect_timeout_s))
        except BaseException:
            conn.terminate()
            raise
        if self._connected_once[index]:
            self.metrics.database_reconnects.inc()
        self._connected_once[index] = True
        previous = self.primary.server
        if self.primary.seen(server):
            self.metrics.database_failovers.inc()
            log.warning("database server changed from %s to %s (failover)", previous, server)
        slot = self._conns[index] = _Conn(conn)
        return slot

    def _drop(self, index: int) -> None:
        slot = self._conns[index]
        self._conns[index] = None
        if slot is not None:
            slot.conn.terminate()

    async def _ping(self, index: int) -> None:
        try:
            slot = await self._connect(index)
            await slot.conn.execute("SELECT 1", timeout=self.connect_timeout_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self._drop(index)
            self._set_database(False, exc)
        else:
            self._set_database(True)

    def _set_database(self, ok: bool, exc: BaseException | None = None) -> None:
        if ok != self.database_ok:
            if ok:
                log.info("database reachable")
            else:
                log.warning("database unavailable: %s", exc)
        self.database_ok = ok
        self.metrics.database_up.set(1 if ok else 0)

    async def _commit(self, index: int, batch: Batch) -> dict[str, int]:
        """Write `batch` until it is committed; returns inserted rows per stream table."""
        delay = BACKOFF_MIN_S
        while True:
            try:
                slot = await self._connect(index)
                try:
                    counts = await self._write(slot, batch, idempotent=batch.dup)
                except asyncpg.UniqueViolationError:
                    batch.dup = True
                    counts = await self._write(slot, batch, idempotent=True)
                except POISON as exc:
                    log.warning("database refused a batch (%s); writing it message by message", exc)
                    counts = await self._isolate(slot, batch)
                self._set_database(True)
                return counts
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._drop(index)
                self._set_database(False, exc)
                log.debug("batch write failed, retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _write(self, slot: _Conn, batch: Batch, idempotent: bool) -> dict[str, int]:
        conn = slot.conn
        counts: dict[str, int] = {}
        if idempotent:
            await self._ensure_staging(slot, [t for t, rows in batch.rows.items() if rows])
        async with conn.transaction():
            for table, rows in batch.rows.items():
                if not rows:
                    continue
                columns = STREAM_COLUMNS[table]
                if idempotent:
                    stage = "stage_" + table
                    await conn.copy_records_to_table(stage, records=rows, columns=columns)
                    status = await conn.execute(
                        f"INSERT INTO {table} SELECT * FROM {stage} ON CONFLICT DO NOTHING"
                    )
                    counts[table] = int(status.rsplit(" ", 1)[1])
                else:
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
                    counts[table] = len(rows)
            if batch.dead:
                await conn.copy_records_to_table(
                    deadletter.TABLE, records=batch.dead, columns=deadletter.COLUMNS
                )
            if batch.device_args is not None:
                await conn.execute(UPSERT_SQL, *batch.device_args)
        return counts

    async def _ensure_staging(self, slot: _Conn, tables: list[str]) -> None:
        for table in tables:
            if table not in slot.staged:
                # Outside the batch transaction, so a rollback does not take it away.
                await slot.conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                slot.staged.add(table)

    async def _isolate(self, slot: _Conn, batch: Batch) -> dict[str, int]:
        counts: dict[str, int] = {}
        spans: dict[int, list[tuple[str, int, int]]] = {}
        for source, table, start, end in batch.spans:
            spans.setdefault(source, []).append((table, start, end))
        for source, parts in spans.items():
            single = Batch(batch.gen)
            for table, start, end in parts:
                single.rows.setdefault(table, []).extend(batch.rows[table][start:end])
            try:
                done = await self._write(slot, single, idempotent=True)
            except POISON as exc:
                topic, payload, received = batch.sources[source]
                err = ContractError(Reason.SCHEMA, f"database refused the record: {exc}")
                # Every stream row starts (ts, project_id, device_id, ...): the dead letter
                # is filed under the device like every other.
                owner = next((batch.rows[t][a] for t, a, e in parts if e > a), None)
                project, device = (owner[1], owner[2]) if owner is not None else (None, None)
                single = Batch(batch.gen)
                single.dead.append(
                    deadletter.dead_letter_row(received, topic, payload, err, project, device)
                )
                await self._write(slot, single, idempotent=False)
                self.metrics.rejected.labels(Reason.SCHEMA.value).inc()
                continue
            for table, n in done.items():
                counts[table] = counts.get(table, 0) + n
        rest = Batch(batch.gen)
        rest.dead = batch.dead
        rest.device_args = batch.device_args
        await self._write(slot, rest, idempotent=False)
        return counts

    def _account(self, batch: Batch, counts: dict[str, int], elapsed: float) -> None:
        m = self.metrics
        m.commit_seconds.observe(elapsed)
        m.batch_rows.observe(batch.nrows)
        for table, n in counts.items():
            if n:
                m.rows_written.labels(STREAM_OF_TABLE[table]).inc(n)
        lags = batch.lags
        if lags:
            now = datetime.now(UTC)
            step = max(1, len(lags) // LAG_SAMPLES)
            for ts in lags[::step]:
                m.lag_seconds.observe(max(0.0, (now - ts).total_seconds()))
