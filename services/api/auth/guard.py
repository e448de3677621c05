"""The request side of API keys: read the header, check it (cached briefly), check scope.

A cache keyed by the token's hash keeps hot routes at one query per request; revocation
takes effect within `api.key_cache_s` seconds. Unknown keys are cached too, in a small
cache of their own so a flood of made-up keys cannot push the good ones out.

Failed authentications are limited per client address (`api.auth_failures_per_s`): a
client that keeps presenting keys that do not check out gets 429 before its next key costs
a database lookup. Keys that authenticated recently are exempt, so an attacker sharing an
address (a NAT, a proxy) with real clients cannot lock them out.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.api.auth.keys import (
    LOOKUP_SQL,
    ApiKey,
    hash_token,
    presented_token,
    split_token,
    verify,
)
from services.api.errors import ApiError
from services.api.limits import TokenBuckets

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The key itself.")
_CACHE_MAX: Final = 10_000
_NEGATIVE_MAX: Final = 1_000  # unknown keys remembered; the oldest go first
_GOOD_MAX: Final = 10_000  # keys that authenticated, exempt from the failure limit


class KeyCache:
    """Checked keys by token hash, plus what the failure limit needs to know."""

    def __init__(self, ttl_s: float, failures_per_s: float = 0.0, failure_burst: int = 1) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[ApiKey, float]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._good: OrderedDict[str, None] = OrderedDict()
        self.failures = TokenBuckets(failures_per_s, failure_burst) if failures_per_s > 0 else None
        # Lookups under way, by token hash: requests that miss while one runs share it.
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def load(
        self, digest: str, lookup: Callable[[], Awaitable[ApiKey | None]]
    ) -> ApiKey | None:
        """The key for `digest` from one `lookup` shared by every request that misses while
        it runs, and cached.

        Why: when a hot key's entry expired, every request in flight read it from the
        database itself (at 500 requests/s on 64 connections, tens of lookups at once every
        `ttl_s`, each holding a pooled connection that queued commands waited for). With a
        TTL of 0 (check every request) each request still does its own lookup."""
        if self.ttl_s <= 0:
            key = await lookup()
            self.put(digest, key)
            return key
        running = self._loading.get(digest)
        if running is not None:
            await asyncio.wait([running])  # never cancels the shared lookup
            if not running.cancelled():
                return running.result()
            # The request that looked up went away (or its lookup failed): look up anew.
            key = await lookup()
            self.put(digest, key)
            return key
        fut: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._loading[digest] = fut
        try:
            key = await lookup()
        except BaseException:
            fut.cancel()
            raise
        finally:
            self._loading.pop(digest, None)
        self.put(digest, key)
        fut.set_result(key)
        return key

    def get(self, digest: str) -> tuple[bool, ApiKey | None]:
        now = time.monotonic()
        hit = self._items.get(digest)
        if hit is not None and hit[1] >= now:
            return True, hit[0]
        miss = self._unknown.get(digest)
        if miss is not None and miss >= now:
            return True, None
        return False, None

    def put(self, digest: str, key: ApiKey | None) -> None:
        expires = time.monotonic() + self.ttl_s
        if key is None:
            self._items.pop(digest, None)
            self._good.pop(digest, None)
            self._unknown.pop(digest, None)
            self._unknown[digest] = expires
            if len(self._unknown) > _NEGATIVE_MAX:
                self._unknown.popitem(last=False)
            return
        self._unknown.pop(digest, None)
        self._good.pop(digest, None)
        self._good[digest] = None
        if len(self._good) > _GOOD_MAX:
            self._good.popitem(last=False)
        if len(self._items) >= _CACHE_MAX:
            self._items.clear()
        self._items[digest] = (key, expires)

    def forget(self, prefix: str) -> None:
        """Drop a key this process revoked, so it stops working here at once (other
        processes still take up to `ttl_s`)."""
        for digest in [d for d, (k, _) in self._items.items() if k.prefix == prefix]:
            del self._items[digest]
            self._good.pop(digest, None)

    def trusted(self, digest: str) -> bool:
        """Whether this key authenticated recently (and has not failed since)."""
        return digest in self._good

    def failure_wait(self, address: str) -> float:
        """Seconds until this address may try an unproven key again (0: now)."""
        return 0.0 if self.failures is None else self.failures.peek(address.encode())

    def failed(self, address: str) -> None:
        if self.failures is not None:
            self.failures.take(address.encode())


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def current_key(
    request: Request,
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _header_doc: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    # The two security dependencies document the headers in OpenAPI; the token itself is
    # read the one way the rate limiter reads it.
    token = presented_token(request.scope["headers"])
    if not token:
        raise _unauthorized("an API key is required (Authorization: Bearer or X-API-Key)")
    cache: KeyCache = request.app.state.key_cache
    digest = hash_token(token)
    address = request.client.host if request.client is not None else "?"
    if not cache.trusted(digest):
        wait = cache.failure_wait(address)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                "too many failed authentications from this address",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    found, key = cache.get(digest)
    if not found:

        async def lookup() -> ApiKey | None:
            # The plain pool, not the request's: no request waits for a second connection
            # while holding one from the same pool.
            prefix = split_token(token)
            pool = request.app.state.fast_pool
            rows = [] if prefix is None else await pool.fetch(LOOKUP_SQL, prefix)
            return verify(dict(rows[0]) if rows else None, token)

        key = await cache.load(digest, lookup)
    if key is None:
        cache.failed(address)
        raise _unauthorized("the API key is unknown or revoked")
    return key


def require(scope: str) -> object:
    # `current_key` is called, not declared as a sub-dependency: FastAPI solves each
    # dependency level with work of its own per request (its dependency solving was a fifth
    # of the API's samples at 500 commands/s), and the header dependencies still document
    # the key in OpenAPI.
    async def check(
        request: Request,
        _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        _header_doc: Annotated[str | None, Depends(_header)],
    ) -> ApiKey:
        key = await current_key(request, _bearer_doc, _header_doc)
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this key's scope {key.scope!r} lacks {scope!r}")
        return key

    return Depends(check)


Reader = Annotated[ApiKey, require("read")]
Operator = Annotated[ApiKey, require("operate")]
Admin = Annotated[ApiKey, require("admin")]
