"""Refuse NUL characters anywhere in the path or query before they reach a handler.

PostgreSQL text cannot hold U+0000, so an id or filter containing one would fail inside
the database as a server error; it is a client error, answered as such, in one place.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.errors import body
from services.api.responses import JSONResponse


class RejectNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            response = JSONResponse(
                body("invalid", "NUL characters are not allowed in paths or queries"), 422
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
