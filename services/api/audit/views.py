"""`GET /api/v1/audit`: the audit trail, newest first, filtered and paginated (admin).

A key limited to some projects sees only the acts on those projects; acts that belong to
no project (API keys, say) only an admin key for every project sees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from services.api.audit.models import AuditPage
from services.api.auth.guard import Admin
from services.api.deps import Conn
from services.api.errors import invalid
from services.api.params import CursorParam, Limit, decode_cursor, encode_cursor
from services.api.scope import project_filter
from services.core.tables import audit_events

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

_Text = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@router.get("", response_model=AuditPage, summary="The audit trail, newest first (admin).")
async def list_audit(
    conn: Conn,
    key: Admin,
    project: Annotated[str | None, Query(max_length=64)] = None,
    actor: _Text = None,
    action: _Text = None,
    target_type: _Text = None,
    target_id: _Text = None,
    since: Annotated[datetime | None, Query(description="At or after (RFC 3339).")] = None,
    until: Annotated[datetime | None, Query(description="Before (RFC 3339).")] = None,
    limit: Limit = 100,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor, (str, int))
    visible = project_filter(key, project)
    c = audit_events.c
    q = sa.select(audit_events).order_by(c.ts.desc(), c.id.desc()).limit(limit + 1)
    if visible is not None:
        q = q.where(c.project_id.in_(visible))
    for column, wanted in (
        (c.actor, actor),
        (c.action, action),
        (c.target_type, target_type),
        (c.target_id, target_id),
    ):
        if wanted is not None:
            q = q.where(column == wanted)
    if since is not None:
        q = q.where(c.ts >= _aware(since))
    if until is not None:
        q = q.where(c.ts < _aware(until))
    if after is not None:
        try:
            ts = datetime.fromisoformat(after[0])
        except ValueError:
            raise invalid("cursor is not one this API issued") from None
        q = q.where(sa.tuple_(c.ts, c.id) < sa.tuple_(ts, after[1]))
    rows = (await conn.execute(q)).all()
    items = [dict(r._mapping) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        nxt = encode_cursor([items[-1]["ts"].isoformat(), items[-1]["id"]])
    return {"items": items, "next_cursor": nxt}
