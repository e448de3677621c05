"""Request metrics, labelled by route template so ids never become label values.

The names are fixed: the Helm chart's alerts query them. The middleware is plain ASGI
(no per-request task or body buffering) and reads the matched route from the scope after
the router has run; unmatched paths count as route "unmatched".

`ApiMetrics` holds every metric the API exports, on the registry `create_app` creates for
the app (with `process_*`), which `/metrics` serves: nothing uses the global registry.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.metrics import LATENCY_BUCKETS, metric_name


class ApiMetrics:
    """Every metric of one API app, registered on the registry its `/metrics` serves.

    One set per app rather than module-level objects, so that each app created in a
    process (tests create many) counts and exports its own requests only.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        # prometheus_client appends `_total` to counters: exposed as factory5g_api_requests_total.
        self.requests = Counter(
            metric_name("api", "requests"),
            "API requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            metric_name("api", "request", "seconds"),
            "API request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.database_failovers = Counter(
            metric_name("api", "database_failovers"),
            "Times the readiness check reached another database server than before "
            "(failover, switchover or restart of the primary).",
            registry=r,
        )
        self.live_streams = Gauge(
            metric_name("api", "live_streams"), "Open dashboard live streams.", registry=r
        )
        self.live_events = Counter(
            metric_name("api", "live_events"),
            "Alarm events fanned out to live streams.",
            ["kind"],
            registry=r,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.requests = metrics.requests
        self.latency = metrics.latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.requests.labels(template, method, str(status)).inc()
            self.latency.labels(template, method).observe(time.perf_counter() - start)
