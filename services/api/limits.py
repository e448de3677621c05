"""Per-key rate limits and a request body size limit, in front of every API route.

A token bucket per API key (per client address for requests without a key) bounds what
one caller can make this process do; the key is the one authentication checks
(`presented_token`), so extra key headers cannot open fresh buckets. Failed authentications
are limited per address in `auth.guard`; buckets live in memory, so each API worker process
limits on its own (N workers allow up to N times the rate). A body larger than the limit
is refused with 413 before a route reads it, whether or not Content-Length announces it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.auth.keys import presented_token
from services.api.errors import body

MAX_BUCKETS: Final = 50_000  # least recently used buckets beyond this are forgotten
EXEMPT: Final = ("/healthz", "/readyz", "/metrics")


class TokenBuckets:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def take(self, key: bytes) -> float:
        """0 if a request may proceed now, else the seconds until one token is back."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait

    def peek(self, key: bytes) -> float:
        """What `take` would answer, without taking anything."""
        hit = self._buckets.get(key)
        if hit is None:
            return 0.0
        tokens = min(self.burst, hit[0] + (self.clock() - hit[1]) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


def _error(status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    payload = orjson.dumps(body(code, message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


def caller(scope: Scope) -> bytes:
    """The bucket key: a digest of the API key auth will check, else the client address."""
    token = presented_token(scope.get("headers", []))
    if token is not None:
        return b"k:" + hashlib.sha256(token.encode()).digest()[:16]
    client = scope.get("client")
    return b"a:" + (client[0].encode() if client else b"?")


class RequestLimits:
    """ASGI middleware: 429 with Retry-After over the rate, 413 over the body size."""

    def __init__(self, app: ASGIApp, rate_per_s: float, burst: int, max_body_bytes: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_s, burst) if rate_per_s > 0 else None
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        if self.buckets is not None:
            wait = self.buckets.take(caller(scope))
            if wait > 0:
                retry = str(max(1, math.ceil(wait))).encode()
                for m in _error(429, "rate_limited", "too many requests for this key",
                                [(b"retry-after", retry)]):  # fmt: skip
                    await send(m)
                return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await self._too_large(send)
                return

        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            # Past the limit the app gets an empty, final chunk instead of the rest; whatever
            # it answers to that truncated body is replaced by the 413 below.
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._too_large(send)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        message = f"request body larger than {self.max_body} bytes"
        for m in _error(413, "payload_too_large", message, []):
            await send(m)
