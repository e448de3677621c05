"""Faults with real processes: database outage, broker restart, kill -9 and SIGTERM.

Ingest runs as `python -m services.cli ingest`, a publisher sends QoS 1 traffic at a
steady rate and remembers which publishes the broker acknowledged. After recovery the
database must hold every acknowledged message exactly once, and nothing never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from services.core import db
from services.core.settings import Settings, load_settings
from tests.test_ingest_helpers import (
    IngestProcess,
    ingest_env,
    inspection,
    query,
    topic,
    wait_until,
)

pytestmark = pytest.mark.slow


class SteadyPublisher:
    """QoS 1 publishes at a fixed rate; reconnects when the broker goes away."""

    def __init__(self, port: int, project: str, rate: float = 400, window: int = 10) -> None:
        self.port = port
        self.project = project
        self.rate = rate
        self.window = window
        self.sent: set[int] = set()
        self.acked: set[int] = set()
        self.stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def finish(self) -> None:
        self.stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)

    async def _run(self) -> None:
        seq = 0
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, timeout=5) as client:
                    while not self.stop.is_set():
                        started = loop.time()
                        batch = list(range(seq, seq + self.window))
                        seq += self.window
                        self.sent.update(batch)
                        now_ms = int(time.time() * 1000)
                        results = await asyncio.gather(
                            *(
                                client.publish(
                                    topic(self.project, "inspection", f"cam-{i % 10}"),
                                    inspection(i, now_ms),
                                    qos=1,
                                )
                                for i in batch
                            ),
                            return_exceptions=True,
                        )
                        self.acked.update(
                            i for i, r in zip(batch, results, strict=True) if r is None
                        )
                        if any(r is not None for r in results):
                            raise aiomqtt.MqttError("publish failed")
                        pause = self.window / self.rate - (loop.time() - started)
                        await asyncio.sleep(max(0.0, pause))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


async def _stored(url: str, project: str) -> list[int]:
    rows = await query(url, "SELECT seq FROM inspections WHERE project_id = $1", project)
    return [r[0] for r in rows]


async def _assert_exactly_acked(url: str, pub: SteadyPublisher, within: float = 30) -> None:
    async def caught_up() -> bool:
        return set(await _stored(url, pub.project)) >= pub.acked

    try:
        await wait_until(caught_up, within, 0.25)
    except AssertionError:
        have = set(await _stored(url, pub.project))
        missing = sorted(pub.acked - have)
        raise AssertionError(
            f"{len(missing)} of {len(pub.acked)} acknowledged messages not stored "
            f"(first {missing[:10]}); {len(have)} stored"
        ) from None
    await asyncio.sleep(1.0)  # anything late would show up as a surplus now
    stored = await _stored(url, pub.project)
    assert len(stored) == len(set(stored)), "duplicate rows"
    assert set(stored) >= pub.acked
    assert set(stored) <= pub.sent
    assert len(pub.acked) > 500, "too little traffic to mean anything"


async def _health(port: int) -> dict[str, object] | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    body: dict[str, object] = orjson.loads(data.partition(b"\r\n\r\n")[2])
    return body


async def _wait_healthy(port: int, proc: IngestProcess, within: float = 30) -> None:
    async def healthy() -> bool:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise AssertionError("ingest exited:\n" + proc.log())
        body = await _health(port)
        return body is not None and body["ok"] is True

    await wait_until(healthy, within, 0.1)


def _settings(url: str, mqtt_port: int, metrics_port: int, delay_ms: int = 20) -> Settings:
    return load_settings(
        database={"url": url},
        mqtt={"host": "127.0.0.1", "port": mqtt_port},
        ingest={
            "client_id": f"ingest-{uuid.uuid4().hex[:8]}",
            "metrics_port": metrics_port,
            "batch_max_delay_ms": delay_ms,
        },
    )


@contextlib.contextmanager
def _ingest(env: dict[str, str], log: Path) -> Iterator[IngestProcess]:
    proc = IngestProcess(env, log)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop_quietly()


@pytest.fixture
def own_postgres(stack_tmp: Path) -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, since the test stops it."""
    server = Postgres(stack_tmp / f"pg-{uuid.uuid4().hex[:8]}", port=free_port(), durable=False)
    server.start()
    yield server
    server.stop(mode="immediate")


async def test_database_outage_of_thirty_seconds_loses_nothing(
    own_postgres: Postgres, new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    own_postgres.ensure_database("outage")
    url = own_postgres.url_for("outage")
    db.migrate(url)
    metrics_port = free_port()
    settings = _settings(url, broker.port, metrics_port)
    # A small receive maximum, so that the outage also backs messages up in the broker.
    env = ingest_env(settings, F5G_INGEST__RECEIVE_MAXIMUM="300")
    pub = SteadyPublisher(broker.port, "outage")
    with _ingest(env, tmp_path / "ingest.log") as proc:
        await _wait_healthy(metrics_port, proc)
        pub.start()
        await asyncio.sleep(2)
        await asyncio.to_thread(own_postgres.stop, "fast")
        outage_started = time.monotonic()

        async def database_down() -> bool:
            body = await _health(metrics_port)
            return body is not None and body["database"] is False

        await wait_until(database_down, 15)
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        assert proc.proc is not None
        assert proc.proc.poll() is None, proc.log()
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(2)
        await pub.finish()
        await _assert_exactly_acked(url, pub)
        await _wait_healthy(metrics_port, proc)
        assert proc.terminate() == 0


async def test_broker_restart_during_steady_publishing(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    url = new_database()
    metrics_port = free_port()
    # Without `$share`: Mosquitto does not restore shared subscriptions from persistence,
    # so with one it drops what is published before ingest resubscribes (see consumer.py).
    env = ingest_env(_settings(url, broker.port, metrics_port), F5G_INGEST__SHARE_GROUP="")
    pub = SteadyPublisher(broker.port, "restart")
    with _ingest(env, tmp_path / "ingest.log") as proc:
        await _wait_healthy(metrics_port, proc)
        pub.start()
        await asyncio.sleep(2)
        await asyncio.to_thread(broker.restart)
        await asyncio.sleep(3)
        await pub.finish()
        try:
            await _assert_exactly_acked(url, pub)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.log()}") from None
        await _wait_healthy(metrics_port, proc)
        assert proc.terminate() == 0


async def test_kill9_then_sigterm_lose_nothing_acknowledged(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    url = new_database()
    metrics_port = free_port()
    # Long-lived batches: a service that acknowledged before commit would lose hundreds
    # of messages to kill -9 here, not a lucky few.
    env = ingest_env(_settings(url, broker.port, metrics_port, delay_ms=400))
    pub = SteadyPublisher(broker.port, "crash", rate=600)
    log = tmp_path / "ingest.log"
    with _ingest(env, log) as first:
        await _wait_healthy(metrics_port, first)
        pub.start()
        await asyncio.sleep(2)
        first.kill9()
    await asyncio.sleep(1)  # traffic queues in the broker for the dead session
    with _ingest(env, log) as second:
        await _wait_healthy(metrics_port, second)
        await asyncio.sleep(1.5)
        # SIGTERM mid-stream: stop reading, commit, acknowledge, exit 0.
        assert second.terminate() == 0, second.log()
        assert "not committed" not in second.log()
    with _ingest(env, log) as third:
        await _wait_healthy(metrics_port, third)
        await asyncio.sleep(1)
        await pub.finish()
        await _assert_exactly_acked(url, pub)
        assert third.terminate() == 0
