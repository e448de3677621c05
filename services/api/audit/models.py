"""Audit trail resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEvent(BaseModel):
    id: int
    ts: datetime
    actor: str
    actor_key: str | None
    action: str
    target_type: str
    target_id: str
    project_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None
