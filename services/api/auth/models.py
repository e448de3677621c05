"""API key resource shapes: what a client sends to create a key and what it gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.contracts import ID_PATTERN

Scope = Literal["read", "operate", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="Who or what uses the key (the actor in alarms and the audit trail).",
    )
    scope: Scope = "read"
    projects: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        None, max_length=1000, description="Projects the key may see; null = every project."
    )


class KeyOut(BaseModel):
    prefix: str
    name: str
    scope: str
    projects: list[str] | None
    created_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(BaseModel):
    token: str = Field(description="The key itself: shown this once, only its hash is kept.")
    key: KeyOut


class KeyList(BaseModel):
    items: list[KeyOut]
