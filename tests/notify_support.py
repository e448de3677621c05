"""Helpers of the notifier tests: a real HTTP receiver on loopback, the notifier in-process
or as a child process, and alarm transitions written through the real lifecycle SQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from f5gdev.devstack.servers import free_port
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.notify.service import NotifyService
from services.protocols.notify.channels import webhook
from tests.test_ingest_helpers import REPO

# The webhook channels' shared secret in these tests (the channel requires >= 16 chars).
SECRET = "test-webhook-secret-0123"


def webhook_config(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """A valid webhook channel config for a loopback receiver."""
    return {"url": url, "secret": SECRET, "allow_insecure_http": True, "timeout_s": timeout_s}


class Receiver:
    """A webhook receiver: HTTP/1.1 with keep-alive, counting accepted idempotency keys.

    mode "ok" answers 200, "error" 503, "hold" never answers (a request in flight when the
    notifier is killed). Every call's signature is verified with `SECRET` as a receiver in
    production would: a call that fails it is answered 401 and counted in `rejected`.
    `stop()` closes the socket and every connection: the receiver is
    down (connection refused) until `start()` again on the same port.
    """

    def __init__(self, port: int | None = None, secret: str = SECRET) -> None:
        self.port = port or free_port()
        self.secret = secret
        self.mode = "ok"
        self.accepted: Counter[str] = Counter()
        self.requests = 0
        self.rejected = 0
        self.holding = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._release.set()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.accepted.values() if n > 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                if self.mode == "hold":
                    self.holding += 1
                    await self._release.wait()
                    return
                if self.mode == "error":
                    status, answer = "503 Service Unavailable", b"down for maintenance"
                elif not self._verified(headers, body):
                    status, answer = "401 Unauthorized", b"bad signature"
                    self.rejected += 1
                else:
                    status, answer = "200 OK", b'{"ok":true}'
                    self.accepted[headers.get("idempotency-key", "")] += 1
                    self.bodies.append(orjson.loads(body))
                    self.headers.append(headers)
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            webhook.verify(
                self.secret, headers.get(webhook.TIMESTAMP_HEADER.lower()),
                headers.get(webhook.SIGNATURE_HEADER.lower()), body,
            )  # fmt: skip
        except webhook.VerificationError:
            return False
        return True


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


async def add_route(
    conn: asyncpg.Connection,
    project: str,
    url: str,
    name: str,
    **route: Any,
) -> int:
    """A webhook channel and a route of `project` to it; returns the route id."""
    channel_id = await conn.fetchval(
        "INSERT INTO notify_channels (project_id, name, type, config) "
        "VALUES ($1, $2, 'webhook', $3::jsonb) RETURNING id",
        project,
        name,
        orjson.dumps(webhook_config(url, route.pop("timeout_s", 5.0))).decode(),
    )
    cols = ["project_id", "name", "channel_id", *route]
    values = [project, name, channel_id, *route.values()]
    marks = ", ".join(f"${i + 1}" for i in range(len(values)))
    route_id: int = await conn.fetchval(
        f"INSERT INTO notify_routes ({', '.join(cols)}) VALUES ({marks}) RETURNING id", *values
    )
    return route_id


async def open_alarm(
    conn: asyncpg.Connection, project: str, device: str, severity: str = "major"
) -> int:
    from services.protocols import alarm_lifecycle as lifecycle

    row = await lifecycle.open_or_update(
        conn,
        project=project,
        device=device,
        rule="safety_stop",
        severity=severity,
        message=f"{device} stopped",
        count=1,
        value=1.0,
        evidence={},
        at=datetime.now(UTC),
    )
    return int(row["id"])


@contextlib.asynccontextmanager
async def notifier(settings: Settings) -> AsyncIterator[NotifyService]:
    """The notifier in this process until the block ends."""
    service = NotifyService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def notify_env(settings: Settings) -> dict[str, str]:
    """Environment for `python -m services.cli notify` equivalent to `settings`."""
    env = dict(os.environ)
    env["F5G_DATABASE__URL"] = settings.database.url
    env["F5G_LOG_LEVEL"] = "INFO"
    for key, value in settings.notify.model_dump().items():
        if value is not None:
            # Lists as JSON, as pydantic-settings reads them from the environment.
            text = json.dumps(value) if isinstance(value, list) else str(value)
            env[f"F5G_NOTIFY__{key.upper()}"] = text
    return env


class NotifierProcess:
    """`python -m services.cli notify` as a child process, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "notify"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

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
