"""Project visibility: a key never learns that another project's data exists.

A project outside a key's set answers exactly like a project that does not exist (404),
so ids cannot be probed. A project exists when it is registered or has devices (ingest
registers devices as they first publish, before anyone registers the project).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth.keys import ApiKey
from services.api.errors import not_found

_EXISTS = sa.text(
    "SELECT EXISTS (SELECT 1 FROM projects WHERE id = :p) "
    "OR EXISTS (SELECT 1 FROM devices WHERE project_id = :p)"
)


async def visible_project(conn: AsyncConnection, key: ApiKey, project_id: str) -> str:
    if not key.sees(project_id) or not (await conn.execute(_EXISTS, {"p": project_id})).scalar():
        raise not_found(f"project {project_id!r}")
    return project_id


def project_filter(key: ApiKey, wanted: str | None) -> list[str] | None:
    """Projects a listing may include (None: all); a hidden `wanted` yields 404."""
    if wanted is not None and not key.sees(wanted):
        raise not_found(f"project {wanted!r}")
    return key.visible(wanted)
