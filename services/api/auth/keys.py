"""API keys stored as sha256 hashes of high-entropy tokens, found by a short visible prefix.

A token looks like `f5g_<prefix>_<secret>`; only the prefix and the hash of the whole token
are stored, so a database dump does not hand out access. 32 random bytes make a plain
(unsalted) hash safe: there is nothing to guess. Scopes are ordered: operate includes read,
admin includes both. `projects` None means every project.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.audit import record as audit
from services.api.audit.record import Actor
from services.core.tables import api_keys

SCOPES: Final = ("read", "operate", "admin")
TOKEN_PREFIX: Final = "f5g_"


@dataclass(frozen=True)
class ApiKey:
    prefix: str
    name: str
    scope: str
    projects: frozenset[str] | None
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def sees(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    def visible(self, wanted: str | None = None) -> list[str] | None:
        """Projects a query may touch: None = all, [] = none visible."""
        if wanted is not None:
            return [wanted] if self.sees(wanted) else []
        return None if self.projects is None else sorted(self.projects)


def presented_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The one credential a request presents: `X-API-Key` if set, else a Bearer token.

    Authentication and the rate limiter both call this, so the key that is checked is the
    key that is charged: a second, different key header cannot buy a fresh bucket. The
    first occurrence of each header counts, as in Starlette's `headers.get`.
    """
    auth: bytes | None = None
    key: bytes | None = None
    for name, value in headers:
        if name == b"x-api-key" and key is None:
            key = value
        elif name == b"authorization" and auth is None:
            auth = value
    if key:
        return key.decode("latin-1")
    if auth is not None:
        scheme, _, credentials = auth.partition(b" ")
        if scheme.lower() == b"bearer" and credentials:
            return credentials.decode("latin-1")
    return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split_token(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    prefix, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(prefix) != 10 or len(secret) < 32:
        return None
    return prefix


def _row_to_key(row: sa.Row[Any]) -> ApiKey:
    return key_from_mapping(dict(row._mapping))


def key_from_mapping(m: dict[str, Any]) -> ApiKey:
    projects = m["projects"]
    return ApiKey(
        prefix=str(m["prefix"]),
        name=str(m["name"]),
        scope=str(m["scope"]),
        projects=None if projects is None else frozenset(projects),
        created_at=m.get("created_at"),
        revoked_at=m.get("revoked_at"),
    )


def _described(key: ApiKey) -> dict[str, Any]:
    """What the audit trail keeps of a key: never its hash or token."""
    return {
        "name": key.name,
        "scope": key.scope,
        "projects": None if key.projects is None else sorted(key.projects),
        "revoked_at": key.revoked_at,
    }


async def create(
    conn: AsyncConnection,
    name: str,
    scope: str,
    projects: list[str] | None,
    *,
    actor: Actor | None = None,
    actor_token: str | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key and return its token, which is shown once and never stored.

    With `actor_token` (the API, whose role cannot write `api_keys`) the key is stored by
    the owner's function `api_key_create`, which checks that token is a live admin key for
    every project; without it (the `factory5g keys` command as the schema owner) by a plain
    INSERT. Both record the act in the audit trail on `conn`, committed with the key.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    prefix = secrets.token_hex(5)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    wanted = None if projects is None else sorted(set(projects))
    if actor_token is not None:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT prefix, name, scope, projects, created_at, revoked_at "
                    "FROM api_key_create(:actor, :prefix, :hash, :name, :scope, :projects)"
                ),
                {
                    "actor": actor_token,
                    "prefix": prefix,
                    "hash": hash_token(token),
                    "name": name,
                    "scope": scope,
                    "projects": wanted,
                },
            )
        ).one()
    else:
        row = (
            await conn.execute(
                api_keys.insert()
                .values(
                    prefix=prefix, hash=hash_token(token), name=name, scope=scope, projects=wanted
                )
                .returning(*api_keys.c)
            )
        ).one()
    key = _row_to_key(row)
    await audit.record(
        conn, actor or Actor.cli(), "key.create", "api_key", key.prefix, after=_described(key)
    )
    return token, key


async def ensure(conn: AsyncConnection, token: str, name: str, scope: str = "admin") -> bool:
    """Store the operator's bootstrap admin key, unless its prefix is known already.

    A known prefix is left alone, revoked or not, so revoking a bootstrap key sticks across
    restarts. The API's database role cannot write `api_keys`: the owner's function
    `api_key_bootstrap` (migration 0006) stores the key, and only while the database has no
    admin key yet, so the role cannot mint admin keys of its own. Returns whether a key was
    stored.
    """
    if scope != "admin":
        raise ValueError("a bootstrap key is an admin key")
    if split_token(token) is None:
        raise ValueError("token must look like f5g_<10 letters or digits>_<32+ characters>")
    stored = await conn.execute(
        sa.text("SELECT api_key_bootstrap(:token, :name)"), {"token": token, "name": name}
    )
    return bool(stored.scalar_one())


async def revoke(
    conn: AsyncConnection,
    prefix: str,
    *,
    actor: Actor | None = None,
    actor_token: str | None = None,
) -> bool:
    """Revoke a live key; False when there is none with that prefix. As in `create`, the
    API revokes through the owner's function `api_key_revoke` with its admin token, the
    command as the owner directly; both record the act with the key before and after."""
    before = await get(conn, prefix)
    if before is None or before.revoked_at is not None:
        return False
    if actor_token is not None:
        revoked = bool(
            (
                await conn.execute(
                    sa.text("SELECT api_key_revoke(:actor, :prefix)"),
                    {"actor": actor_token, "prefix": prefix},
                )
            ).scalar_one()
        )
    else:
        result = await conn.execute(
            api_keys.update()
            .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
    if revoked:
        after = await get(conn, prefix)
        await audit.record(
            conn,
            actor or Actor.cli(),
            "key.revoke",
            "api_key",
            prefix,
            before=_described(before),
            after=None if after is None else _described(after),
        )
    return revoked


async def get(conn: AsyncConnection, prefix: str) -> ApiKey | None:
    """A key by prefix, live or revoked (never its hash), or None."""
    row = (
        await conn.execute(
            sa.select(
                api_keys.c.prefix,
                api_keys.c.name,
                api_keys.c.scope,
                api_keys.c.projects,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            ).where(api_keys.c.prefix == prefix)
        )
    ).first()
    return None if row is None else key_from_mapping(dict(row._mapping))


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))
    return [_row_to_key(r) for r in rows]


LOOKUP_SQL: Final = (
    "SELECT prefix, hash, name, scope, projects, created_at, revoked_at FROM api_keys "
    "WHERE prefix = $1 AND revoked_at IS NULL"
)


def verify(row: dict[str, Any] | None, token: str) -> ApiKey | None:
    """The key of a looked-up row if the token's hash matches (in constant time)."""
    if row is None or not hmac.compare_digest(str(row["hash"]), hash_token(token)):
        return None
    return key_from_mapping(row)


async def lookup(conn: AsyncConnection, token: str) -> ApiKey | None:
    """The live key a token belongs to, or None (unknown, malformed or revoked)."""
    prefix = split_token(token)
    if prefix is None:
        return None
    row = (
        await conn.execute(
            sa.select(api_keys).where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    return verify(None if row is None else dict(row._mapping), token)
