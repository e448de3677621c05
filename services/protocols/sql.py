"""Run one SQL text on either an asyncpg connection or a SQLAlchemy AsyncConnection.

The rules service talks asyncpg; the API talks SQLAlchemy. Alarm lifecycle changes must be
the same statements from both, so they are written once with `:name` parameters and
translated to asyncpg's `$n` form here.
"""

from __future__ import annotations

import re
from typing import Any

_PARAM_RE = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


def to_asyncpg(sql: str) -> tuple[str, list[str]]:
    """`:name` parameters to `$1..$n`, returning the names in argument order."""
    names: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM_RE.sub(repl, sql), names


async def fetch(conn: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows as dicts. `conn` is an asyncpg Connection or a SQLAlchemy AsyncConnection."""
    if hasattr(conn, "fetch"):  # asyncpg
        text, names = to_asyncpg(sql)
        rows = await conn.fetch(text, *(params[n] for n in names))
        return [dict(r) for r in rows]
    from sqlalchemy import text as sa_text

    result = await conn.execute(sa_text(sql), params)
    return [dict(r._mapping) for r in result] if result.returns_rows else []
