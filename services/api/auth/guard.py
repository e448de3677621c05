"""The request side of API keys: read the header, check it (cached briefly), check scope.

A cache keyed by the token's hash keeps hot routes at one query per request; revocation
takes effect within `api.key_cache_s` seconds. Unknown keys are cached too, so a client
hammering with a bad key costs no more than a good one.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.api.auth.keys import LOOKUP_SQL, ApiKey, hash_token, split_token, verify
from services.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The key itself.")
_CACHE_MAX = 10_000


class KeyCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[ApiKey | None, float]] = {}

    def get(self, digest: str) -> tuple[bool, ApiKey | None]:
        hit = self._items.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]

    def put(self, digest: str, key: ApiKey | None) -> None:
        if len(self._items) >= _CACHE_MAX:
            self._items.clear()
        self._items[digest] = (key, time.monotonic() + self.ttl_s)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def current_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    token = header or (bearer.credentials if bearer is not None else None)
    if not token:
        raise _unauthorized("an API key is required (Authorization: Bearer or X-API-Key)")
    cache: KeyCache = request.app.state.key_cache
    digest = hash_token(token)
    found, key = cache.get(digest)
    if not found:
        # The plain pool, not the request's: no request waits for a second connection
        # while holding one from the same pool.
        prefix = split_token(token)
        rows = [] if prefix is None else await request.app.state.fast_pool.fetch(LOOKUP_SQL, prefix)
        key = verify(dict(rows[0]) if rows else None, token)
        cache.put(digest, key)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    return key


def require(scope: str) -> object:
    async def check(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this key's scope {key.scope!r} lacks {scope!r}")
        return key

    return Depends(check)


Reader = Annotated[ApiKey, require("read")]
Operator = Annotated[ApiKey, require("operate")]
Admin = Annotated[ApiKey, require("admin")]
