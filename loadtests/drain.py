"""`factory5g bench ingest-drain`: ingest's own ceiling, measured as the drain of a backlog.

Why (issue 21): a throughput run with live publishers measures the publishers as soon as
they are the slower side. A drain has no generator in the timed part at all. With every
drainer stopped, one backlog of N QoS 1 messages is queued at the broker in each drainer's
persistent session (the same client id, clean start off and session expiry the drainer
itself uses, registered by starting the drainer once and stopping it), by the fast filler
(`loadtests/filler.py`, pre-encoded packets from several processes). Then, one drainer at a
time, the clock starts as its process starts and stops when all N messages' rows are
committed in TimescaleDB (counted in the table; ingest's committed-rows counter only says
when to count). The same backlog, in a session of its own on the same broker in the same
run, is drained by the C client `mosquitto_sub -q 1 -c` to /dev/null: the broker's own
delivery ceiling on this machine, the reference the target is a ratio to.

Per drainer the report has msg/s and rows/s (including process start, and from its first
committed row), CPU seconds per 1,000 messages of the drainer and of PostgreSQL (from /proc,
over the drain), the drainer's RSS maximum, and the audit: rows against distinct
(device, seq) for lost and duplicated records. Drainers: `ingest` (one process), `ingest x2`
(`--processes 2`: two processes splitting devices by hash, `ingest.shard_count`), and the
`competent` baseline (`loadtests/competent.py`). `fault-drain-crash` kills each drainer with
SIGKILL halfway through the drain, restarts it and counts what is missing at the end.

Variants: `single` (one `link` record per message), `arrays` (arrays of 50 `link` records),
`sparkplug` (Sparkplug B DDATA with 20 metrics; audited by row count, its seq wraps at 256).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import psycopg2

from f5gdev.devstack.servers import Mosquitto, Postgres
from loadtests import report
from loadtests.filler import Fill, fill, plan, render_slice
from loadtests.observer import CommittedCounter, Observer
from loadtests.payloads import ROWS_PER_RECORD, SEQ_AUDITED, STREAM_TABLE
from loadtests.procs import INGESTORS, Ingestor, cpu_seconds, run_measured, wait_until
from loadtests.runner import BenchEnv, wait_ready
from loadtests.scenarios import SCENARIOS, Scenario, Target
from services.core.db import asyncpg_dsn
from services.core.settings import IngestSettings
from services.core.tables import STREAM_COLUMNS
from services.protocols.rows import FAST_BUILDERS, Row

PROJECT: Final = "bench"
SESSION_S: Final = 3600
C_CLIENT_ID: Final = "bench-c-reference"
COMPETENT: Final = [sys.executable, "-m", "loadtests.competent"]


@dataclass(frozen=True)
class Variant:
    stream: str
    batch: int
    messages: int  # default backlog size
    devices: int = 1000
    copy_ceiling: bool = False  # also time the same rows COPYed with no drainer at all


VARIANTS: Final = {
    "single": Variant("link", 1, 300_000),
    "arrays": Variant("link", 50, 12_000, devices=300, copy_ceiling=True),
    "sparkplug": Variant("sparkplug", 1, 30_000, devices=200),
}
VARIANT_OF_SCENARIO: Final = {
    "ingest-drain": "single",
    "ingest-drain-arrays": "arrays",
    "ingest-drain-sparkplug": "sparkplug",
    "fault-drain-crash": "single",
}


@dataclass(frozen=True)
class Drainer:
    """One ingestor under test: `processes` copies of `command`, each a shard of devices."""

    name: str
    command: list[str]
    processes: int = 1
    has_metrics: bool = True
    env: dict[str, str] = dataclasses.field(default_factory=dict)


Progress = Callable[[str], None]


def postmaster_pid(pg: Postgres | Any) -> int | None:
    try:
        return int((pg.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (AttributeError, OSError, ValueError, IndexError):
        return None


def _ingestors(
    drainer: Drainer, url: str, broker: Mosquitto, run_id: str, log_dir: Path
) -> list[Ingestor]:
    out = []
    for i in range(drainer.processes):
        env = {
            "F5G_DATABASE__URL": url,
            "F5G_MQTT__HOST": "127.0.0.1",
            "F5G_MQTT__PORT": str(broker.port),
            "F5G_INGEST__CLIENT_ID": f"bench-{run_id}-{drainer.name.replace(' ', '')}-{i}",
            "F5G_INGEST__SESSION_EXPIRY_S": str(SESSION_S),
            "F5G_LOG_LEVEL": "WARNING",
            "F5G_INGEST__SHARE_GROUP": "",
            **drainer.env,
        }
        if drainer.processes > 1:
            env["F5G_INGEST__SHARD_INDEX"] = str(i)
            env["F5G_INGEST__SHARD_COUNT"] = str(drainer.processes)
        name = f"{drainer.name.replace(' ', '')}-{i}"
        out.append(Ingestor(name, drainer.command, env, log_dir / f"drain-{name}.log"))
    return out


def _subscribed(ing: Ingestor) -> bool:
    return ing.metrics().get("factory5g_ingest_mqtt_connected", 0.0) >= 1.0


def register(drainer: Drainer, procs: list[Ingestor], url: str, broker: Mosquitto) -> None:
    """Start each process once so that it creates its persistent session and subscribes,
    then stop it cleanly: the broker keeps queueing for it from now on."""
    for ing in procs:
        ing.start()
    try:
        for ing in procs:
            if drainer.has_metrics:
                ok = wait_until(lambda ing=ing: _subscribed(ing), 90.0, 0.1)
            else:  # no metrics: proven subscribed by storing a warm-up record
                ok = wait_ready(Observer(url, "link_kpis", "warmup", []), broker.port, "link")
            if not ok:
                raise RuntimeError(
                    f"{ing.name} did not subscribe within 90 s; log tail:\n{ing.log_tail()}"
                )
    finally:
        for ing in procs:
            ing.stop()


def register_c(broker: Mosquitto) -> None:
    """The C reference's persistent session: subscribe and exit (-E)."""
    args = ["-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i", C_CLIENT_ID]
    args += ["-V", "mqttv5", "-x", str(SESSION_S), "-t", "#", "-E"]
    rc, _out, err, _cpu = run_measured(["mosquitto_sub", *args], 60)
    if rc != 0:
        raise RuntimeError(f"mosquitto_sub could not register its session: {err.strip()}")


def drain_c(broker: Mosquitto, messages: int, timeout_s: float = 900) -> dict[str, Any]:
    """Drain the C reference's session to /dev/null; msg/s including process start."""
    args = ["-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i", C_CLIENT_ID]
    args += ["-V", "mqttv5", "-x", str(SESSION_S), "-t", "#", "-C", str(messages)]
    t0 = time.perf_counter()
    rc, _out, err, cpu = run_measured(["mosquitto_sub", *args], timeout_s)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"mosquitto_sub drain failed ({rc}): {err.strip()}")
    return {
        "messages": messages,
        "wall_s": round(wall, 3),
        "msgs_per_s": messages / wall,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_msgs": 1000 * cpu / messages,
    }


class Counter:
    """Rows of the run in one database: exact counts, and distinct (device, seq) at the end."""

    def __init__(self, url: str, table: str, since: float) -> None:
        self.url, self.table, self.since = url, table, since
        self._conn: Any = None

    def _cur(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.url, connect_timeout=5)
            self._conn.autocommit = True
        return self._conn.cursor()

    def rows(self) -> int:
        cur = self._cur()
        cur.execute(
            f"SELECT count(*) FROM {self.table} WHERE project_id = %s AND ts >= to_timestamp(%s)",
            (PROJECT, self.since),
        )
        return int(cur.fetchone()[0])

    def distinct(self) -> int:
        cur = self._cur()
        cur.execute(
            f"SELECT count(DISTINCT (device_id, seq)) FROM {self.table} "
            "WHERE project_id = %s AND ts >= to_timestamp(%s)",
            (PROJECT, self.since),
        )
        return int(cur.fetchone()[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _committed(procs: list[Ingestor]) -> float | None:
    """Rows the processes say they committed (None without metrics)."""
    values = [
        v
        for ing in procs
        for k, v in ing.metrics().items()
        if k.startswith(CommittedCounter.METRIC)
    ]
    return sum(values) if values else None


def drain(
    drainer: Drainer,
    procs: list[Ingestor],
    counter: Counter,
    pg_pid: int | None,
    messages: int,
    expected_rows: int,
    audit_seq: bool,
    progress: Progress,
    stall_s: float = 30.0,
    crash_at: float | None = None,
    crash_pause_s: float = 1.0,
) -> dict[str, Any]:
    """Start `procs` on their queued sessions and time until `expected_rows` are counted.

    With `crash_at` (a fraction of the rows), the first process is killed with SIGKILL once
    that share is committed and restarted after `crash_pause_s`; the drain then runs until
    complete or stalled, and the audit says what the crash cost."""
    pg0 = cpu_seconds(pg_pid) if pg_pid else math.nan
    t0 = time.perf_counter()
    for ing in procs:
        ing.start()
    rss_max = 0  # all processes together
    rss_proc_max = 0  # the largest single process (the bound is per process)
    cpu_dead = 0.0  # CPU of a killed process, read just before the kill
    first_row_s: float | None = None
    state = "complete"
    last, last_change = -1, time.monotonic()
    next_count = 0.0
    next_line = time.monotonic() + 1.0
    rows = 0
    crashed: dict[str, Any] = {}
    while True:
        now = time.monotonic()
        rss_now = [ing.rss() for ing in procs]
        rss_max = max(rss_max, sum(rss_now))
        rss_proc_max = max(rss_proc_max, *rss_now)
        # The committed-rows counter is cheap to read; a count(*) is work for PostgreSQL,
        # which is being measured: with the counter, count only when it says done (and
        # every 2 s in case it lags). A restarted process's counter starts again at 0.
        hinted = _committed(procs) if drainer.has_metrics and not crashed else None
        if hinted is None or hinted >= expected_rows or now >= next_count:
            rows = counter.rows()
            rows_seen = rows
            next_count = now + (2.0 if hinted is not None else 0.25)
        else:
            rows_seen = int(hinted)
        if rows_seen and first_row_s is None:
            first_row_s = time.perf_counter() - t0
        if rows >= expected_rows:
            break
        if crash_at is not None and not crashed and rows_seen >= crash_at * expected_rows:
            victim = procs[0]
            cpu_dead += cpu_seconds(victim.pid) if victim.pid else 0.0
            victim.kill()
            crashed = {"at_rows": rows_seen, "at_s": round(time.perf_counter() - t0, 2)}
            progress(f"[{drainer.name}] SIGKILL at {rows_seen:,} rows")
            time.sleep(crash_pause_s)
            victim.start()
        if rows_seen != last:
            last, last_change = rows_seen, now
        elif now - last_change > stall_s:
            state = "stalled"
            break
        if now >= next_line:
            next_line = now + 1.0
            progress(
                f"[{drainer.name}] t={time.perf_counter() - t0:5.1f}s rows={rows_seen:>10,} "
                f"of {expected_rows:,} rss={rss_max / 2**20:6.1f}MB"
            )
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu = cpu_dead + sum(cpu_seconds(ing.pid) for ing in procs if ing.pid)
    pg_cpu = (cpu_seconds(pg_pid) - pg0) if pg_pid else math.nan
    alive = all(ing.alive() for ing in procs)
    for ing in procs:
        ing.stop()
    rows = counter.rows()
    distinct = counter.distinct() if audit_seq else rows
    records_expected = expected_rows  # link: one row per record
    out: dict[str, Any] = {
        "drainer": drainer.name,
        "processes": drainer.processes,
        "state": state,
        "messages": messages,
        "rows_expected": expected_rows,
        "rows": rows,
        "wall_s": round(wall, 3),
        "first_row_s": round(first_row_s, 3) if first_row_s is not None else None,
        "msgs_per_s": messages / wall if state == "complete" else math.nan,
        "rows_per_s": expected_rows / wall if state == "complete" else math.nan,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_msgs": 1000 * cpu / messages,
        "pg_cpu_s": round(pg_cpu, 2),
        "pg_cpu_s_per_1000_msgs": 1000 * pg_cpu / messages,
        "rss_max_mb": rss_proc_max / 2**20,
        "rss_all_max_mb": rss_max / 2**20,
        "alive_at_end": alive,
    }
    if first_row_s is not None and state == "complete" and wall > first_row_s:
        out["msgs_per_s_after_first_row"] = messages / (wall - first_row_s)
    if audit_seq:
        out["lost"] = records_expected - distinct
        out["duplicated"] = rows - distinct
    else:  # rows only: fewer is lost, more is duplicated
        out["lost"] = max(0, expected_rows - rows)
        out["duplicated"] = max(0, rows - expected_rows)
    if crash_at is not None:
        out["crash"] = crashed
    return out


# ---------------------------------------------------------------------------- COPY ceiling
#
# Issue 21 puts "COPY's ceiling" at ~300,000 rows/s; a figure from another machine or day
# says nothing about this run. So the arrays report measures it here: the backlog's own rows,
# built beforehand by ingest's own row builder from the filler's payloads (same devices,
# records and values), COPYed by one asyncpg connection in batches of ingest's default
# `batch_max_rows`, one transaction each, into a fresh migrated database (the same
# hypertable, indexes and unique key). No broker, no decoding, no acknowledgement: what
# one connection and PostgreSQL do with the rows alone.


def _no_slow_ts(value: Any, received: datetime) -> datetime:
    raise ValueError(f"ts {value!r} is not epoch ms")


def backlog_rows(
    variant: Variant, messages: int, devices: int, fill_processes: int
) -> tuple[str, list[Row]]:
    """(table, rows) ingest stores for the backlog `fill` queues, in sending order."""
    table, build = FAST_BUILDERS[variant.stream]
    received = datetime.now(UTC)
    ts_ms = int(received.timestamp() * 1000)
    rows: list[Row] = []
    slices = plan("", 0, variant.stream, PROJECT, devices, messages, fill_processes, variant.batch)
    for s in slices:
        names, payloads, _ = render_slice(s, ts_ms)
        for d, payload in payloads:
            build(payload, PROJECT, names[d], -math.inf, math.inf, received, rows, _no_slow_ts)
    return table, rows


async def _copy_batches(
    url: str, table: str, batches: list[list[Row]], connections: int = 1
) -> tuple[float, float]:
    """COPY each batch in a transaction of its own, `connections` connections taking the
    next batch as each finishes (as ingest's writers do): (wall s, client CPU s)."""
    conns = [await asyncpg.connect(asyncpg_dsn(url)) for _ in range(connections)]
    try:
        columns = STREAM_COLUMNS[table]
        pending = iter(batches)

        async def write(conn: asyncpg.Connection) -> None:
            for batch in pending:
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=batch, columns=columns)

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(write(conn) for conn in conns))
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        for conn in conns:
            await conn.close()


def copy_ceiling(
    env: BenchEnv,
    variant: Variant,
    messages: int,
    devices: int,
    fill_processes: int,
    pg_pid: int | None,
    batch_rows: int | None = None,
    connections: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """The backlog's rows COPYed with no drainer: rows/s and CPU per row, the rows counted;
    the first of `connections` at the top level, each under `by_connections`."""
    batch_rows = batch_rows or IngestSettings().batch_max_rows
    table, rows = backlog_rows(variant, messages, devices, fill_processes)
    batches = [rows[i : i + batch_rows] for i in range(0, len(rows), batch_rows)]
    n = len(rows)
    runs: dict[int, dict[str, Any]] = {}
    for k in connections:
        url = env.new_database()
        try:
            pg0 = cpu_seconds(pg_pid) if pg_pid else math.nan
            wall, client_cpu = asyncio.run(_copy_batches(url, table, batches, k))
            pg_cpu = (cpu_seconds(pg_pid) - pg0) if pg_pid else math.nan
            counter = Counter(url, table, 0.0)
            try:
                stored = counter.rows()
            finally:
                counter.close()
        finally:
            env.drop_database(url)
        runs[k] = {
            "rows": n,
            "rows_stored": stored,
            "batch_rows": batch_rows,
            "batches": len(batches),
            "connections": k,
            "wall_s": round(wall, 3),
            "rows_per_s": n / wall,
            "pg_cpu_s": round(pg_cpu, 2),
            "pg_cpu_us_per_row": 1e6 * pg_cpu / n,
            "client_cpu_s": round(client_cpu, 2),
            "client_cpu_us_per_row": 1e6 * client_cpu / n,
        }
    return {**runs[connections[0]], "by_connections": list(runs.values())}


def run(
    env: BenchEnv,
    variant: Variant,
    messages: int,
    drainers: list[Drainer],
    log_dir: Path,
    progress: Progress = print,
    fill_processes: int = 2,
    devices: int | None = None,
    crash_at: float | None = None,
    with_c: bool = True,
    stall_s: float = 30.0,
    with_ceiling: bool | None = None,
) -> dict[str, Any]:
    """One drain run: register every session, fill the backlog once, drain each in turn;
    then, for a variant with `copy_ceiling` (or `with_ceiling`), the COPY ceiling."""
    devices = devices or variant.devices
    if with_ceiling is None:
        with_ceiling = variant.copy_ceiling
    broker = env.new_broker()
    run_id = uuid.uuid4().hex[:6]
    table = STREAM_TABLE[variant.stream]
    rows_per_msg = variant.batch * ROWS_PER_RECORD[variant.stream]
    expected_rows = messages * rows_per_msg
    audit_seq = variant.stream in SEQ_AUDITED
    pg_pid = postmaster_pid(env.pg)
    plans = []
    for d in drainers:
        url = env.new_database()
        procs = _ingestors(d, url, broker, run_id, log_dir)
        progress(f"[{d.name}] registering {d.processes} persistent session(s) ...")
        register(d, procs, url, broker)
        plans.append((d, url, procs))
    has_c = with_c and shutil.which("mosquitto_sub") is not None
    if has_c:
        register_c(broker)
    since = time.time() - 5
    progress(f"filling {messages:,} messages ({expected_rows:,} rows) ...")
    filled: Fill = fill(
        "127.0.0.1",
        broker.port,
        variant.stream,
        PROJECT,
        devices,
        messages,
        processes=fill_processes,
        batch=variant.batch,
        run_id=f"bench-{run_id}",
    )
    progress(
        f"filled {filled.messages:,} messages in {filled.wall_s:.1f} s "
        f"({filled.rate:,.0f} msg/s sending)"
    )
    if filled.acked != filled.messages:
        raise RuntimeError(f"filler: {filled.acked} of {filled.messages} acknowledged")
    result: dict[str, Any] = {
        "variant": dataclasses.asdict(variant) | {"messages": messages, "devices": devices},
        "rows_expected": expected_rows,
        "fill": {
            "processes": len(filled.results),
            "messages": filled.messages,
            "births": filled.births,
            "wall_s": round(filled.wall_s, 2),
            "send_msgs_per_s": filled.rate,
            "cpu_s": round(sum(r.cpu_s for r in filled.results), 2),
        },
        "drains": {},
    }
    if has_c:
        progress("draining the C reference (mosquitto_sub -q 1 -c > /dev/null) ...")
        result["c"] = drain_c(broker, filled.messages)
        progress(f"[c] {result['c']['msgs_per_s']:,.0f} msg/s")
    for d, url, procs in plans:
        counter = Counter(url, table, since)
        try:
            progress(f"[{d.name}] draining ...")
            r = drain(
                d,
                procs,
                counter,
                pg_pid,
                filled.messages,
                expected_rows,
                audit_seq,
                progress,
                stall_s=stall_s,
                crash_at=crash_at,
            )
        finally:
            counter.close()
        result["drains"][d.name] = r
        progress(
            f"[{d.name}] {r['state']}: {r['msgs_per_s']:,.0f} msg/s, {r['rows_per_s']:,.0f} "
            f"rows/s, lost {r['lost']}, duplicated {r['duplicated']}, RSS max "
            f"{r['rss_max_mb']:.0f} MB"
        )
        env.drop_database(url)
    if with_ceiling and variant.stream in FAST_BUILDERS:
        progress("COPY ceiling: the same rows by asyncpg connections, no drainer ...")
        # One connection, as the figure; and as many as ingest has writers.
        writers = IngestSettings().writers
        ceiling = copy_ceiling(
            env, variant, messages, devices, fill_processes, pg_pid, connections=(1, writers)
        )
        for c in ceiling["by_connections"]:
            if c["rows_stored"] != c["rows"]:
                raise RuntimeError(f"COPY ceiling: {c['rows_stored']} of {c['rows']} stored")
            progress(
                f"[copy x{c['connections']}] {c['rows_per_s']:,.0f} rows/s, PostgreSQL "
                f"{c['pg_cpu_us_per_row']:.1f} CPU µs per row"
            )
        result["copy_ceiling"] = ceiling
    return result


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures targets read: the primary drainer under `ingest`, ratios beside it."""
    drains = result["drains"]
    main = drains.get("ingest") or next(iter(drains.values()))
    out: dict[str, Any] = {**result, "ingest": main}
    c = result.get("c")
    if c and main["msgs_per_s"] == main["msgs_per_s"]:
        out["ratio_to_c"] = main["msgs_per_s"] / c["msgs_per_s"]
    ceiling = result.get("copy_ceiling")
    if ceiling and main["rows_per_s"] == main["rows_per_s"]:
        out["ratio_to_copy"] = main["rows_per_s"] / ceiling["rows_per_s"]
    multi = [d for d in drains.values() if d["processes"] > 1]
    if multi and main["processes"] == 1:
        out["scaling"] = multi[0]["msgs_per_s"] / main["msgs_per_s"]
        out["multi"] = multi[0]
    return out


def references(fig: dict[str, Any]) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = []
    c = fig.get("c")
    for name, d in fig["drains"].items():
        if c:
            refs.append(
                {
                    "label": f"{name} drain",
                    "value": d["msgs_per_s"],
                    "unit": "msg/s",
                    "reference": "C client drain, same backlog",
                    "reference_value": c["msgs_per_s"],
                    "ratio": d["msgs_per_s"] / c["msgs_per_s"],
                    "ratio_of": f"{name} / C",
                }
            )
    for name, d in fig["drains"].items():
        if c and d["cpu_s_per_1000_msgs"] > 0:
            # CPU per message moves far less with a loaded machine than wall-clock rates do.
            refs.append(
                {
                    "label": f"{name} CPU per message",
                    "value": d["cpu_s_per_1000_msgs"] * 1000,
                    "unit": "CPU µs",
                    "reference": "C client CPU per message",
                    "reference_value": c["cpu_s_per_1000_msgs"] * 1000,
                    "ratio": c["cpu_s_per_1000_msgs"] / d["cpu_s_per_1000_msgs"],
                    "ratio_of": f"C / {name}",
                }
            )
    ceiling: dict[str, Any] = fig.get("copy_ceiling") or {}
    for name, d in fig["drains"].items() if ceiling else ():
        rows_per_msg = d["rows_expected"] / d["messages"]
        pg_us_per_row = d["pg_cpu_s_per_1000_msgs"] * 1000 / rows_per_msg
        refs += [
            {
                "label": f"{name} drain (rows)",
                "value": d["rows_per_s"],
                "unit": "rows/s",
                "reference": "COPY ceiling: the same rows pre-built, one asyncpg connection",
                "reference_value": ceiling["rows_per_s"],
                "ratio": d["rows_per_s"] / ceiling["rows_per_s"],
                "ratio_of": f"{name} / COPY",
            },
            *(
                {
                    "label": f"{name} drain (rows)",
                    "value": d["rows_per_s"],
                    "unit": "rows/s",
                    "reference": f"COPY ceiling with {c['connections']} connections",
                    "reference_value": c["rows_per_s"],
                    "ratio": d["rows_per_s"] / c["rows_per_s"],
                    "ratio_of": f"{name} / COPY x{c['connections']}",
                }
                for c in ceiling.get("by_connections", [])[1:]
            ),
            {
                "label": f"PostgreSQL CPU per row, {name}",
                "value": pg_us_per_row,
                "unit": "CPU µs",
                "reference": "PostgreSQL CPU per row, COPY ceiling",
                "reference_value": ceiling["pg_cpu_us_per_row"],
                "ratio": ceiling["pg_cpu_us_per_row"] / pg_us_per_row,
                "ratio_of": f"COPY / {name}",
            },
        ]
    if "scaling" in fig:
        refs.append(
            {
                "label": f"{fig['multi']['drainer']} drain",
                "value": fig["multi"]["msgs_per_s"],
                "unit": "msg/s",
                "reference": "one ingest process, same backlog",
                "reference_value": fig["ingest"]["msgs_per_s"],
                "ratio": fig["scaling"],
                "ratio_of": "2 processes / 1",
            }
        )
    return refs


SCALING = Target("2 ingest processes / 1 (drain msg/s)", "scaling", ">=", 1.6, "issue 21")
MULTI_LOST = Target("2 processes: records lost", "multi.lost", "==", 0, "issue 21")
MULTI_DUP = Target("2 processes: rows duplicated", "multi.duplicated", "==", 0, "issue 21")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory5g bench ingest-drain", description=__doc__)
    p.add_argument("scenario", choices=sorted(VARIANT_OF_SCENARIO))
    p.add_argument("--messages", type=int, help="backlog size in messages (default per variant)")
    p.add_argument("--devices", type=int, help="devices the backlog is spread over")
    p.add_argument(
        "--processes", type=int, default=1, help="also drain with this many ingest processes"
    )
    p.add_argument("--fill-processes", type=int, default=2, help="filler processes")
    p.add_argument("--no-baseline", action="store_true", help="skip the competent baseline")
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)  # not used by a drain
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR)
    p.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    scenario: Scenario = SCENARIOS[args.scenario]
    variant = VARIANTS[VARIANT_OF_SCENARIO[args.scenario]]
    messages = args.messages or variant.messages
    crash = args.scenario == "fault-drain-crash"
    drainers = [Drainer("ingest", INGESTORS["ingest"])]
    if args.processes > 1:
        drainers.append(Drainer(f"ingest x{args.processes}", INGESTORS["ingest"], args.processes))
        scenario = dataclasses.replace(
            scenario, targets=(*scenario.targets, SCALING, MULTI_LOST, MULTI_DUP)
        )
    if not args.no_baseline and variant.stream == "link":
        drainers.append(Drainer("competent", COMPETENT, has_metrics=False))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine = report.machine()
    t0 = time.monotonic()
    notes: list[str] = []
    tee = report.Tee()
    log_dir = args.results / "logs"
    with BenchEnv(durable=not args.no_fsync) as env:
        if args.no_fsync:
            notes.append("PostgreSQL ran with fsync off: figures are not comparable.")
        result = run(
            env,
            variant,
            messages,
            drainers,
            log_dir,
            progress=lambda s: print(s, file=tee),
            fill_processes=args.fill_processes,
            devices=args.devices,
            crash_at=0.4 if crash else None,
            with_c=not crash,
        )
    fig = figures(result)
    load = [round(x, 2) for x in os.getloadavg()]
    notes.append(
        f"Load average at the end {load}: on a shared machine the drainers' wall-clock rates "
        "move with the load; CPU per message (below) moves far less."
    )
    if args.processes > 1:
        notes.append(
            f"{args.processes} ingest processes split devices by stable hash "
            "(`ingest.shard_count`): each subscribes to every topic in a persistent session "
            "of its own, so the broker delivers the whole backlog to each and each "
            "acknowledges the other's messages unread. Mosquitto 2.0 does not keep `$share` "
            "subscriptions across a restart, so a shared subscription cannot hold a "
            "persistent backlog here (docs/benchmarks.md)."
        )
    for name, d in fig["drains"].items():
        if d["state"] != "complete":
            notes.append(
                f"{name}: the drain stalled (no new row for 30 s) with {d['rows']:,} of "
                f"{d['rows_expected']:,} rows stored; its log is in the results' logs/ directory. "
                + (
                    "Ingest acknowledges only after commit, so what it did not store is "
                    "still queued at the broker, not lost: the figure below counts what "
                    "was missing when the run ended."
                    if d["drainer"].startswith("ingest")
                    else ""
                )
            )
    doc = report.build_result(
        scenario, [], started, time.monotonic() - t0, notes, machine_info=machine, figures=fig
    )
    doc["references"] = references(fig)
    doc["drain"] = fig
    doc["output"] = tee.getvalue()
    out = report.write(doc, args.results)
    for t in doc["targets"]:
        print(
            f"  {t['label']}: {report._measured(t['value'], t['bound'])} "
            f"({t['op']} {t['bound']:g}) {report.verdict(t['met'])}"
        )
    print(f"report: {out / 'report.md'}")
    ok = all(t["met"] for t in doc["targets"])
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
