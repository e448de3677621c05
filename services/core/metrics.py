"""Prometheus metrics and health over one small HTTP listener per service.

Each service exposes `/metrics` (Prometheus text format), `/healthz` (liveness: 200 while
the event loop answers) and `/readyz` (readiness: 200 when broker and database are
reachable, 503 otherwise) on its own port; both carry the same JSON body, whose `ok` is
readiness. Liveness does not depend on the broker or the database: a database failover or
outage longer than a liveness probe's patience would otherwise have Kubernetes restart
every replica, which helps nothing (the service reconnects by itself) and throws away its
held messages and reconnect state (tests/test_db_failover.py: `/healthz` answered 503
while Patroni promoted the standby). The listener runs on the service's event loop, so a
health check answers only while the loop itself is responsive.

Every service (ingest, rules, api) creates its own registry at start (`service_registry`)
and hands it to whatever it measures; nothing registers on prometheus_client's global
registry. A module-level metric would be exported by every process that imports the module:
the rules service, which reuses ingest's protocol adapters, used to export copies of
ingest's Sparkplug counters, and operators alerting on them could not tell which process
counted. With one registry per service, a metric is exported exactly where it changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from services.core import heap

HealthCheck = Callable[[], tuple[bool, dict[str, object]]]

# Latency buckets in seconds, from sub-millisecond commits to minute-long outages.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


def metric_name(subsystem: str, name: str, unit: str = "") -> str:
    """`factory5g_<subsystem>_<name>_<unit>`: the one naming rule for every metric."""
    return "_".join(p for p in ("factory5g", subsystem, name, unit) if p)


def service_registry() -> CollectorRegistry:
    """A new registry for one service, with the standard `process_*`, `python_gc_*` and
    `python_info` metrics, and the collector's pauses (`factory5g_process_gc_pause_seconds`,
    services/core/heap.py).

    Scrape targets of every job then carry CPU, memory and file-descriptor figures, which
    the global registry used to provide only to the process that served it.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    heap.register(registry)
    return registry


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        health: HealthCheck | None,
        registry: CollectorRegistry,
    ) -> None:
        self.host = host
        self.port = port
        self.health = health or (lambda: (True, {}))
        self.registry = registry
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        if self.port == 0:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode("latin-1") if b" " in request else "/"
            path = path.split("?", 1)[0]
            if path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
            elif path in ("/healthz", "/readyz"):
                ok, detail = self.health()
                ready = path == "/healthz" or ok
                status, ctype = (200 if ready else 503), "application/json"
                body = orjson.dumps({"ok": ok, **detail})
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
