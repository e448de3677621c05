"""Request dependencies: pooled database connections.

Reads run on autocommit connections: a read-only request then costs one round trip instead
of three (BEGIN, query, ROLLBACK), which is most of the cost of the hot listing routes.
Routes that change state take `TxConn`, a connection inside a transaction that they commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection


async def _read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.read_engine.connect() as conn:
        yield conn


async def _tx_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.engine.connect() as conn:
        yield conn


Conn = Annotated[AsyncConnection, Depends(_read_connection)]
TxConn = Annotated[AsyncConnection, Depends(_tx_connection)]
