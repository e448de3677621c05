"""Shared tools of the ingest tests: run ingest in-process or as a process, publish, query."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import orjson
from prometheus_client.parser import text_string_to_metric_families

from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.ingest.service import IngestService

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "services" / "core" / "schemas" / "examples"
ROOT = "f5g/v1"
KINDS = {"inspection": "camera", "agv": "agv", "link": "cpe", "telemetry": "machine"}


def rows_written(port: int) -> float:
    """Ingest's committed-rows counter, scraped from its /metrics on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "factory5g_ingest_rows_written_total"
    )


def topic(project: str, stream: str, device: str) -> str:
    return f"{ROOT}/{project}/{KINDS.get(stream, 'dev')}/{device}/{stream}"


def inspection(seq: int, ts_ms: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "ts": ts_ms if ts_ms is not None else int(time.time() * 1000),
            "seq": seq,
            "station": "st-01",
            "part_id": f"P-{seq}",
            "result": "pass" if seq % 7 else "fail",
            "defects": [] if seq % 7 else [{"type": "scratch", "confidence": 0.9}],
            "confidence": 0.98,
            "inference_ms": 21.5,
        }
    )


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


async def scalar(url: str, sql: str, *args: Any) -> Any:
    return (await query(url, sql, *args))[0][0]


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def wait_count(url: str, sql: str, expected: int, within: float = 20) -> int:
    """Wait until `sql` (a count) reaches `expected`; then check it stays there briefly."""
    last = -1

    async def reached() -> bool:
        nonlocal last
        last = int(await scalar(url, sql))
        return last >= expected

    try:
        await wait_until(reached, within)
    except AssertionError:
        raise AssertionError(f"{sql}: {last} rows, expected {expected}") from None
    await asyncio.sleep(0.3)
    return int(await scalar(url, sql))


async def publish(
    port: int,
    messages: list[tuple[str, bytes]],
    qos: int = 1,
    window: int = 10,
    client_id: str | None = None,
) -> int:
    """Publish and return how many the broker acknowledged (all, unless it failed)."""
    acked = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, timeout=10) as client:
        for start in range(0, len(messages), window):
            chunk = messages[start : start + window]
            await asyncio.gather(*(client.publish(t, p, qos=qos) for t, p in chunk))
            acked += len(chunk)
    return acked


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[IngestService]:
    """An in-process ingest service, connected before the body runs."""
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.ensure_future(service.run_until(stop))

    async def connected() -> bool:
        if task.done():
            task.result()
        return service.consumer.connected

    await wait_until(connected, 15, 0.02)
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def ingest_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for `python -m services.cli ingest` equivalent to `settings`."""
    env = dict(os.environ)
    env.update(
        {
            "F5G_DATABASE__URL": settings.database.url,
            "F5G_MQTT__HOST": settings.mqtt.host,
            "F5G_MQTT__PORT": str(settings.mqtt.port),
            "F5G_INGEST__CLIENT_ID": settings.ingest.client_id,
            "F5G_INGEST__METRICS_PORT": str(settings.ingest.metrics_port),
            "F5G_INGEST__BATCH_MAX_DELAY_MS": str(settings.ingest.batch_max_delay_ms),
            "F5G_LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


class IngestProcess:
    """`python -m services.cli ingest` as a child process, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 40) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]
