"""Credential resource shapes: one request shape per kind, one answer shape for all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.contracts import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]


class NativeCreate(BaseModel):
    """A device of the native contract: publishes under f5g/v1/{project}/{kind}/{device}/#."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["native"]
    project: Id
    kind: Id
    device: Id


class SparkplugCreate(BaseModel):
    """A Sparkplug B edge node; its project is its group id."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["sparkplug"]
    group: Id
    node: Id


class AgvCreate(BaseModel):
    """A VDA 5050 AGV; interface and version are the deployment's (ingest's settings)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["vda5050"]
    manufacturer: Id
    serial: Id


class AlarmReaderCreate(BaseModel):
    """A read-only subscriber of one project's alarms (an andon board)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["alarms"]
    project: Id
    name: Id


CredentialCreate = Annotated[
    NativeCreate | SparkplugCreate | AgvCreate | AlarmReaderCreate, Field(discriminator="type")
]


class Credential(BaseModel):
    id: int
    username: str
    client_id: str
    type: str
    project_id: str
    params: dict[str, Any]
    created_at: datetime
    created_by: str
    rotated_at: datetime | None
    revoked_at: datetime | None


class Grants(BaseModel):
    publish: list[str]
    subscribe: list[str]


class Issued(BaseModel):
    credential: Credential
    username: str
    password: str = Field(description="Shown in this answer only; the broker keeps a hash.")
    client_id: str = Field(description="The only client id the broker accepts for it.")
    grants: Grants
    live: bool = Field(description="Applied to the running broker already (else at its start).")


class CredentialPage(BaseModel):
    items: list[Credential]
    next_cursor: str | None
