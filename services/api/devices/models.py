"""Device resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class Device(BaseModel):
    project_id: str
    device_id: str
    kind: str
    first_seen: datetime
    last_seen: datetime
    online: bool
    metadata: dict[str, Any]
    status: str = "unregistered"
    """unregistered (ingest saw it, no admin registered it) | registered | retired."""
    profiles: list[str] = []
    """Rule sets and KPIs the device takes part in (its kind only suggests a default)."""
    registered_at: datetime | None = None
    retired_at: datetime | None = None


class DeviceDetail(Device):
    last: dict[str, dict[str, Any]]
    """Latest record per stream the device publishes (telemetry: latest value per metric)."""


class DevicePage(BaseModel):
    items: list[Device]
    next_cursor: str | None
