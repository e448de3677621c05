"""Writing the audit trail: the acting party, the request id, and one row per act.

Every route that changes state records its act with `record` on the connection of the
act, before it commits, so the act and its row are committed together or not at all. The
API role may only append to `audit_events` (0009_admin), and the database stamps the time
and its login itself.
"""

from __future__ import annotations

import getpass
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.tables import audit_events

REQUEST_ID_HEADER: Final = "x-request-id"
# A client's own request id is kept when it is short and plain; anything else is replaced,
# so the trail never stores a client's arbitrary bytes as an id.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Actor:
    """Who acts: an API key (its name and prefix) or a local command (`cli:<login>`)."""

    name: str
    key: str | None = None
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            login = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for the uid (containers)
            login = "unknown"
        return cls(f"cli:{login}")


def _plain(value: Any) -> Any:
    """JSON-able copy of a row's values (times as ISO text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    *,
    project: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one act to the trail on `conn`; the caller commits it with the act."""
    await conn.execute(
        audit_events.insert().values(
            actor=actor.name,
            actor_key=actor.key,
            action=action,
            target_type=target_type,
            target_id=target_id,
            project_id=project,
            before=None if before is None else _plain(before),
            after=None if after is None else _plain(after),
            request_id=actor.request_id,
        )
    )


def request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class RequestId:
    """Give every HTTP request an id (the client's `X-Request-ID` if plain, else a new
    one), keep it in the request state for the audit trail, and answer with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER.encode():
                given = value.decode("latin-1")
                break
        rid = given if given is not None and _CLIENT_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def acting(request: Request, key: Any) -> Actor:
    """The actor of a request made with API key `key`."""
    return Actor(key.name, key.prefix, request_id(request))
