"""A real PostgreSQL failover under ingest: Patroni, two TimescaleDB members, SIGKILL.

The database is `f5gdev.devstack.ha.HaPostgres`: etcd and two PostgreSQL 15 + TimescaleDB
members under Patroni with a synchronous standby, on loopback. Ingest runs as its own
process with the one multi-host URL (`target_session_attrs=read-write`), a publisher sends
QoS 1 traffic at a steady rate and remembers what the broker acknowledged; the primary
stops sending WAL for 1.5 s and then it (Patroni and every PostgreSQL process
of it) is killed with SIGKILL. With asynchronous replication (`HaPostgres(synchronous=
False)`) that lost 1,311 of 22,190 acknowledged messages: commits the primary confirmed
and no standby had. With the synchronous standby the commits of the window never
returned, so their outcome is unknown to ingest, which writes them again: 0 lost. Patroni
promotes the standby, ingest's writers reconnect to it and write their uncommitted
batches again. The new primary must hold every acknowledged message exactly once, and
the API, running beside it on the same URL, must be ready again on the new primary and
say that it failed over.

A cluster that does not start fails the test: the packages come from
scripts/install-stack.sh like every other server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from f5gdev.devstack.ha import HaPostgres
from f5gdev.devstack.servers import Mosquitto, free_port
from services.core import db
from tests.test_ingest_faults import (
    SteadyPublisher,
    _assert_exactly_acked,
    _health,
    _ingest,
    _settings,
    _wait_healthy,
)
from tests.test_ingest_helpers import ingest_env, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def ha_postgres(stack_tmp: Path) -> Iterator[HaPostgres]:
    cluster = HaPostgres(stack_tmp / f"ha-{uuid.uuid4().hex[:8]}", durable=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exported")


async def _status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readline()
    writer.close()
    return int(head.split()[1])


def _readyz(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            body: dict[str, object] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while not ready: the body says why
        body = json.loads(exc.read())
    except OSError:
        return None
    return body


@contextlib.contextmanager
def _api(url: str, broker: Mosquitto, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "F5G_DATABASE__URL": url,
        "F5G_MQTT__PORT": str(broker.port),
        "F5G_API__PORT": str(port),
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "api"], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_multi_host_url_reaches_sqlalchemy_drivers() -> None:
    """SQLAlchemy cannot parse several hosts in a URL's authority; both drivers get them as
    repeated `host=` keys, the password and the other query keys kept."""
    url = "postgresql://u:p%40ss@10.0.0.1:5432,10.0.0.2:5433/f5g?target_session_attrs=read-write"
    assert db.sync_url(url) == (
        "postgresql+psycopg2://u:p%40ss@/f5g?host=10.0.0.1:5432&host=10.0.0.2:5433"
        "&target_session_attrs=read-write"
    )
    assert db.async_url(url).startswith("postgresql+asyncpg://u:p%40ss@/f5g?host=10.0.0.1:5432")
    # asyncpg parses libpq multi-host URLs itself: unchanged.
    assert db.asyncpg_dsn(url) == url
    single = "postgresql://u:p@db:5432/f5g"
    assert db.sync_url(single) == "postgresql+psycopg2://u:p@db:5432/f5g"


async def test_sigkill_of_the_primary_loses_no_acknowledged_message(
    ha_postgres: HaPostgres, new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    ha_postgres.ensure_database("failover")
    url = ha_postgres.url_for("failover")
    await asyncio.to_thread(db.migrate, url)
    metrics_port = free_port()
    env = ingest_env(_settings(url, broker.port, metrics_port, delay_ms=50))
    pub = SteadyPublisher(broker.port, "failover", rate=1000)
    api_port = free_port()
    api_log = tmp_path / "api.log"
    with (
        _ingest(env, tmp_path / "ingest.log") as proc,
        _api(url, broker, api_port, api_log) as api,
    ):
        await _wait_healthy(metrics_port, proc)

        async def api_ready() -> bool:
            assert api.poll() is None, api_log.read_text()[-3000:]
            body = await asyncio.to_thread(_readyz, api_port)
            return body is not None and body["ok"] is True

        await wait_until(api_ready, 60, 0.2)
        pub.start()
        await asyncio.sleep(3)
        acked_before = len(pub.acked)
        # The primary stops sending WAL for 1.5 s, then it dies: everything
        # committed in that window exists on the primary alone. With the synchronous
        # standby those commits never returned (ingest acknowledged nothing of them and
        # writes them again on the new primary); with asynchronous replication they
        # returned, were acknowledged, and vanish with the primary.
        with ha_postgres.replication_stalled():
            await asyncio.sleep(1.5)
            old = await asyncio.to_thread(ha_postgres.kill_primary)
        killed_at = time.monotonic()

        async def database_down() -> bool:
            body = await _health(metrics_port)
            return body is not None and body["database"] is False

        # While no primary takes writes ingest is alive but not ready: a liveness probe
        # that failed here would have Kubernetes restart every replica in a long failover.
        await wait_until(database_down, 15, 0.1)
        assert await _status(metrics_port, "/healthz") == 200
        assert await _status(metrics_port, "/readyz") == 503
        new = await asyncio.to_thread(ha_postgres.wait_primary, 90.0, old.name)
        promoted_s = time.monotonic() - killed_at

        async def failed_over() -> bool:
            body = await _health(metrics_port)
            if body is None or body["ok"] is not True:
                return False
            primary = body["database_primary"]
            assert isinstance(primary, dict)
            return bool(primary["failovers"]) and f":{new.pg_port}@" in str(primary["server"])

        try:
            await wait_until(failed_over, 60, 0.2)
        except AssertionError:
            raise AssertionError(f"ingest did not report the failover\n{proc.log()}") from None
        back_s = time.monotonic() - killed_at

        async def api_failed_over() -> bool:
            body = await asyncio.to_thread(_readyz, api_port)
            if body is None or body["ok"] is not True:
                return False
            primary = body["database_primary"]
            assert isinstance(primary, dict)
            return bool(primary["failovers"]) and f":{new.pg_port}@" in str(primary["server"])

        try:
            await wait_until(api_failed_over, 60, 0.5)
        except AssertionError:
            raise AssertionError(
                f"the API did not report the failover: {_readyz(api_port)}\n"
                + api_log.read_text()[-3000:]
            ) from None
        await asyncio.sleep(2)  # traffic on the new primary
        await pub.finish()
        try:
            await _assert_exactly_acked(url, pub, within=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.log()}") from None
        assert _metric(metrics_port, "factory5g_ingest_database_failovers_total") >= 1
        assert _metric(metrics_port, "factory5g_ingest_database_reconnects_total") >= 1
        assert proc.terminate() == 0, proc.log()
    print(
        f"acked {len(pub.acked)} ({acked_before} before the kill), promoted after "
        f"{promoted_s:.1f}s, ingest healthy on {new.name} after {back_s:.1f}s"
    )
    assert len(pub.acked) > acked_before + 500, "too little traffic after the failover"
