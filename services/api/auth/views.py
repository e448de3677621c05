"""`/api/v1/keys`: create (token shown once), list (never a secret), revoke (admin).

The same service functions as `factory5g keys` (services/api/auth/keys.py) do the work;
the API's database role cannot write `api_keys`, so they pass the caller's own token to
the owner's functions `api_key_create`/`api_key_revoke` (0006_least_privilege), which
check it once more in the database. Only an admin key for every project manages keys: a
key limited to some projects could otherwise mint one that sees all of them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from services.api.audit.record import acting
from services.api.auth import keys
from services.api.auth.guard import Admin, KeyCache
from services.api.auth.models import KeyCreate, KeyCreated, KeyList, KeyOut
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, documented, invalid, not_found

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def _out(key: keys.ApiKey) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "name": key.name,
        "scope": key.scope,
        "projects": None if key.projects is None else sorted(key.projects),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _key_admin(key: keys.ApiKey) -> None:
    if key.projects is not None:
        raise ApiError(403, "forbidden", "managing API keys needs an admin key for every project")


def _token(request: Request) -> str:
    token = keys.presented_token(request.scope["headers"])
    assert token is not None  # the Admin dependency authenticated it
    return token


def _refused(exc: sa.exc.DBAPIError) -> ApiError:
    """The database functions' refusals, as the client's error they are."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code == "42501" and "live admin key is needed" in str(exc.orig):
        # api_key_admin's refusal: the caller's key was revoked meanwhile
        return ApiError(403, "forbidden", "this key may no longer manage API keys")
    if code == "22023":  # invalid_parameter_value
        return invalid("the key's name, scope or projects are not valid")
    raise exc


@router.get("", response_model=KeyList, summary="Every API key, live and revoked (admin).")
async def list_keys(conn: Conn, key: Admin) -> dict[str, Any]:
    _key_admin(key)
    return {"items": [_out(k) for k in await keys.list_keys(conn)]}


@router.post(
    "",
    response_model=KeyCreated,
    status_code=201,
    summary="Create a key; its token is in this answer only (admin for every project).",
)
async def create_key(request: Request, body: KeyCreate, conn: TxConn, key: Admin) -> dict[str, Any]:
    _key_admin(key)
    try:
        token, created = await keys.create(
            conn,
            body.name,
            body.scope,
            body.projects,
            actor=acting(request, key),
            actor_token=_token(request),
        )
    except sa.exc.DBAPIError as exc:
        await conn.rollback()
        raise _refused(exc) from None
    await conn.commit()
    return {"token": token, "key": _out(created)}


@router.post(
    "/{prefix}/revoke",
    response_model=KeyOut,
    responses=documented(409),
    summary="Revoke a key for good (admin for every project).",
)
async def revoke_key(request: Request, prefix: str, conn: TxConn, key: Admin) -> dict[str, Any]:
    _key_admin(key)
    if len(prefix) != 10 or "_" in prefix or "\x00" in prefix:
        raise not_found(f"API key {prefix!r}")
    found = await keys.get(conn, prefix)
    if found is None:
        raise not_found(f"API key {prefix!r}")
    if found.revoked_at is not None:
        raise ApiError(409, "conflict", f"API key {prefix!r} is revoked already")
    if found.scope == "admin" and found.projects is None:
        live = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FROM api_keys WHERE scope = 'admin' "
                    "AND projects IS NULL AND revoked_at IS NULL"
                )
            )
        ).scalar_one()
        if live <= 1:
            raise ApiError(
                409,
                "conflict",
                "this is the last live admin key for every project: create another "
                "before revoking it, or nobody could manage keys through the API again",
            )
    try:
        revoked = await keys.revoke(
            conn, prefix, actor=acting(request, key), actor_token=_token(request)
        )
    except sa.exc.DBAPIError as exc:
        await conn.rollback()
        raise _refused(exc) from None
    if not revoked:  # revoked by someone else between the check and now
        await conn.rollback()
        raise ApiError(409, "conflict", f"API key {prefix!r} is revoked already")
    await conn.commit()
    cache: KeyCache = request.app.state.key_cache
    cache.forget(prefix)
    after = await keys.get(conn, prefix)
    assert after is not None
    return _out(after)
