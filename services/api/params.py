"""Bounded query inputs shared by routes: time ranges and opaque pagination cursors."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Query, Request

from services.api.errors import invalid

MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


# What RFC 3339 requires up front; pydantic also takes bare numbers (as epoch seconds).
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _rfc3339(request: Request, name: str) -> None:
    raw = request.query_params.get(name)
    if raw is not None and _RFC3339_START.match(raw) is None:
        raise invalid(f"{name} must be an RFC 3339 date-time, e.g. 2026-01-31T08:00:00Z")


def _aware(t: datetime, name: str) -> datetime:
    t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    try:
        t = t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid(f"{name} is out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise invalid(f"{name} must lie between 1970 and 2200")
    return t


def time_range(
    request: Request,
    start: Annotated[
        datetime | None, Query(description="Range start (RFC 3339; default: end - 24 h).")
    ] = None,
    end: Annotated[
        datetime | None, Query(description="Range end (RFC 3339; default: now).")
    ] = None,
) -> TimeRange:
    """A range that ends after it starts and spans at most `max_range_days`."""
    max_days: int = request.app.state.settings.api.max_range_days
    _rfc3339(request, "start")
    _rfc3339(request, "end")
    e = _aware(end, "end") if end is not None else datetime.now(UTC)
    s = _aware(start if start is not None else e - timedelta(days=1), "start")
    if e <= s:
        raise invalid("end must be after start")
    if e - s > timedelta(days=max_days):
        raise invalid(f"the range may span at most {max_days} days")
    return TimeRange(s, e)


Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1-500).")]
CursorParam = Annotated[
    str | None, Query(max_length=512, description="Opaque cursor from the previous page.")
]


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> list[Any] | None:
    """The sort key a cursor carries, checked against the expected types."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid("cursor is not one this API issued") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, types, strict=True)
        )
    ):
        raise invalid("cursor is not one this API issued")
    return key
