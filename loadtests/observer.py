"""What the database says was committed: counts over time, latency probes and the final audit.

Commit time is taken from the store, not from the ingestor: a poller asks the database
every few tens of milliseconds for new rows of a few probe devices. A row first visible
to a query started at wall time T was committed before T, and each record's `ts` is its
publish time, so `T - ts` is an upper bound of publish-to-commit latency whose error is at
most one poll interval (recorded as `resolution_s`). Throughput comes from exact
`count(*)` samples, or, for factory5g's own ingest, from its committed-rows counter
(`sampler`): an exact count over tens of millions of rows is a parallel scan that takes a
large share of two cores each second, which would measure the harness, not the ingestor.
Completion and the audit at the end always count the table itself: per device, the seqs
the broker acknowledged against the seqs stored.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg2


@dataclass
class _Probe:
    device: str
    contiguous: int = 0  # every seq <= this has been seen
    contiguous_ts_ms: int = 0
    ahead: dict[int, int] = field(default_factory=dict)  # seen seq > contiguous -> ts ms
    gap_since: float | None = None


@dataclass
class Audit:
    """Per-run loss accounting. `lost` are acknowledged records that were never stored."""

    published_records: int
    acked_records: int
    stored_records: int
    stored_rows: int
    lost: int
    duplicated_rows: int
    unexpected: int
    unacked_stored: int
    lost_examples: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Observer:
    def __init__(
        self,
        url: str,
        table: str,
        project: str,
        probes: list[str],
        rows_per_record: int = 1,
        poll_s: float = 0.025,
        count_s: float = 1.0,
        gap_timeout_s: float = 10.0,
        since: float = 0.0,
    ) -> None:
        self.since = since  # epoch s: rows older than this are not the run's (row audits)
        self.url = url
        self.table = table
        self.project = project
        self.rows_per_record = rows_per_record
        self.poll_s = poll_s
        self.count_s = count_s
        self.gap_timeout_s = gap_timeout_s
        self._probes = [_Probe(d) for d in probes]
        self.latencies: list[tuple[float, float]] = []  # (wall seen, latency s)
        self.counts: list[tuple[float, int]] = []  # (wall, rows)
        self.db_errors = 0
        # Cheap stand-in for count() during the run, on the same scale (rows of this run).
        self.sampler: Callable[[], int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._lock = threading.RLock()  # the poller thread and the run share one connection

    # ------------------------------------------------------------------ connection

    def _cursor(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.url, connect_timeout=2)
            self._conn.autocommit = True
        return self._conn.cursor()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None

    def count(self) -> int:
        with self._lock:
            cur = self._cursor()
            cur.execute(
                f"SELECT count(*) FROM {self.table} WHERE project_id = %s "
                "AND ts >= to_timestamp(%s)",
                (self.project, self.since),
            )
            return int(cur.fetchone()[0])

    # ------------------------------------------------------------------ polling

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._drop()

    def _run(self) -> None:
        next_count = 0.0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with self._lock:
                    if self._probes:
                        self.poll_probes()
                    if t0 >= next_count:
                        next_count = t0 + self.count_s
                        wall = time.time()
                        rows = self.sampler() if self.sampler else self.count()
                        self.counts.append((wall, rows))
            except psycopg2.Error:
                self.db_errors += 1  # an outage is part of some scenarios: keep polling
                with self._lock:
                    self._drop()
                self._stop.wait(0.2)
            self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - t0)))

    def poll_probes(self) -> None:
        cur = self._cursor()
        now = time.monotonic()
        for probe in self._probes:
            wall = time.time()
            cur.execute(
                f"SELECT seq, (extract(epoch FROM ts) * 1000)::bigint FROM {self.table} "
                "WHERE project_id = %s AND device_id = %s AND ts >= to_timestamp(%s / 1000.0) "
                "AND seq > %s",
                (self.project, probe.device, probe.contiguous_ts_ms, probe.contiguous),
            )
            for seq, ts_ms in cur.fetchall():
                if seq in probe.ahead or seq <= probe.contiguous:
                    continue
                probe.ahead[seq] = ts_ms
                self.latencies.append((wall, wall - ts_ms / 1000.0))
            self._advance(probe, now)

    def _advance(self, probe: _Probe, now: float) -> None:
        while probe.contiguous + 1 in probe.ahead:
            probe.contiguous += 1
            probe.contiguous_ts_ms = probe.ahead.pop(probe.contiguous)
        if not probe.ahead:
            probe.gap_since = None
            return
        if probe.gap_since is None:
            probe.gap_since = now
        elif now - probe.gap_since > self.gap_timeout_s:
            # A record that never arrives must not make every later poll re-read the rows
            # after it; the audit counts it as lost.
            probe.contiguous = min(probe.ahead) - 1
            probe.gap_since = None
            self._advance(probe, now)

    # ------------------------------------------------------------------ audit

    def audit(self, last_seq: dict[str, int], unacked: dict[str, list[int]]) -> Audit:
        """Compare what the broker acknowledged (all seqs up to `last_seq` except `unacked`)
        with what the table holds."""
        with self._lock:
            return self._audit(last_seq, unacked)

    def audit_rows(self, acked_msgs: dict[str, int], published_msgs: dict[str, int]) -> Audit:
        """Loss accounting by row count, for protocols whose stored seq is not ours
        (Sparkplug's wraps at 256). Rows timestamped before the run (births) are ignored.
        Less exact than by seq: a record the broker never acknowledged but that still
        arrived can hide a loss, so `unacked_stored` cannot be told apart here."""
        per = self.rows_per_record
        with self._lock:
            cur = self._cursor()
            cur.execute(
                f"SELECT device_id, count(*) FROM {self.table} WHERE project_id = %s "
                "AND ts >= to_timestamp(%s) GROUP BY device_id",
                (self.project, self.since),
            )
            stored = dict(cur.fetchall())
        lost = dup = 0
        examples: list[str] = []
        for device, acked in acked_msgs.items():
            rows = int(stored.get(device, 0))
            if rows < acked * per:
                lost += (acked * per - rows + per - 1) // per
                if len(examples) < 10:
                    examples.append(f"{device}:{acked * per - rows} rows")
            dup += max(0, rows - published_msgs[device] * per)
        stored_rows = sum(int(v) for d, v in stored.items() if d in acked_msgs)
        return Audit(
            published_records=sum(published_msgs.values()),
            acked_records=sum(acked_msgs.values()),
            stored_records=stored_rows // per,
            stored_rows=stored_rows,
            lost=lost,
            duplicated_rows=dup,
            unexpected=sum(int(v) for d, v in stored.items() if d not in acked_msgs),
            unacked_stored=0,
            lost_examples=examples,
        )

    def _audit(self, last_seq: dict[str, int], unacked: dict[str, list[int]]) -> Audit:
        cur = self._cursor()
        cur.execute(
            f"SELECT device_id, count(*), count(DISTINCT seq), max(seq) FROM {self.table} "
            "WHERE project_id = %s GROUP BY device_id",
            (self.project,),
        )
        stored = {d: (rows, distinct, top) for d, rows, distinct, top in cur.fetchall()}
        published = sum(last_seq.values())
        acked = published - sum(len(v) for v in unacked.values())
        stored_records = sum(v[1] for v in stored.values())
        stored_rows = sum(v[0] for v in stored.values())
        unexpected = sum(v[1] for d, v in stored.items() if d not in last_seq)
        unacked_stored = 0
        lost = 0
        examples: list[str] = []
        for device, top in last_seq.items():
            _rows, distinct, max_seq = stored.get(device, (0, 0, 0))
            if max_seq and max_seq > top:
                cur.execute(
                    f"SELECT count(DISTINCT seq) FROM {self.table} WHERE project_id = %s "
                    "AND device_id = %s AND seq > %s",
                    (self.project, device, top),
                )
                extra = int(cur.fetchone()[0])
                unexpected += extra
                distinct -= extra
            pending = unacked.get(device, [])
            got_pending = 0
            if pending:
                cur.execute(
                    f"SELECT count(DISTINCT seq) FROM {self.table} WHERE project_id = %s "
                    "AND device_id = %s AND seq = ANY(%s)",
                    (self.project, device, pending),
                )
                got_pending = int(cur.fetchone()[0])
            unacked_stored += got_pending
            missing = (top - len(pending)) - (distinct - got_pending)
            if missing > 0:
                lost += missing
                if len(examples) < 10:
                    cur.execute(
                        f"SELECT s FROM generate_series(1, %s) s WHERE s <> ALL(%s) AND NOT "
                        f"EXISTS (SELECT 1 FROM {self.table} WHERE project_id = %s AND "
                        "device_id = %s AND seq = s) LIMIT 5",
                        (top, pending or [0], self.project, device),
                    )
                    examples += [f"{device}:{r[0]}" for r in cur.fetchall()]
        duplicated = stored_rows - stored_records * self.rows_per_record
        return Audit(
            published_records=published,
            acked_records=acked,
            stored_records=stored_records,
            stored_rows=stored_rows,
            lost=lost,
            duplicated_rows=max(0, duplicated),
            unexpected=unexpected,
            unacked_stored=unacked_stored,
            lost_examples=examples[:10],
        )


class CommittedCounter:
    """Rows an ingestor reports committed (`factory5g_ingest_rows_written_total`), as an
    offset from a base count, surviving the ingestor's restarts (its counter starts at 0)."""

    METRIC = "factory5g_ingest_rows_written_total"

    def __init__(self, read: Callable[[], dict[str, float]], base_rows: int) -> None:
        self._read = read
        self._base = base_rows
        self._done = 0.0  # rows counted by ingestor processes that have since restarted
        self._last = self._sample()
        self._start = self._last

    def _sample(self) -> float | None:
        values = [v for k, v in self._read().items() if k.startswith(self.METRIC)]
        return sum(values) if values else None

    @property
    def available(self) -> bool:
        return self._start is not None

    def __call__(self) -> int:
        now = self._sample()
        if now is None or self._last is None:
            return self._base + int(self._done + (self._last or 0) - (self._start or 0))
        if now < self._last:  # restarted: the old process's total is kept in _done
            self._done += self._last
            self._last = now
            return self._base + int(self._done + now - (self._start or 0))
        self._last = now
        return self._base + int(self._done + now - (self._start or 0))
