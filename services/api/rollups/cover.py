"""Choosing raw rows or rollups for a time range, exactly.

A range [start, end) is covered by whole hours from the hourly rollup where they are
complete (before its watermark), whole minutes from the minute rollup around them, and raw
rows for the ragged edges and anything newer than the minute watermark. All three produce
the same summary columns, so the query on top merges them without knowing which was used;
results are exact (no "approximately the last hour") and long ranges read hundreds of rows
per device instead of hundreds of thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.api.rollups import sql
from services.api.rollups.maintain import floor_to
from services.api.rollups.specs import Col, Spec

Source = Literal["raw", "1m", "1h"]


@dataclass(frozen=True)
class Segment:
    source: Source
    start: datetime
    end: datetime


def _ceil_to(t: datetime, seconds: int) -> datetime:
    f = floor_to(t, seconds)
    return f if f == t else f + timedelta(seconds=seconds)


def plan(
    start: datetime,
    end: datetime,
    watermarks: dict[str, datetime],
    bucket_s: int | None = None,
) -> list[Segment]:
    """Segments covering [start, end); with `bucket_s`, only rollups that tile it are used."""
    out: list[Segment] = []

    def cover(a: datetime, b: datetime, levels: Sequence[tuple[Source, int]]) -> None:
        if a >= b:
            return
        if not levels:
            out.append(Segment("raw", a, b))
            return
        (name, width), rest = levels[0], levels[1:]
        wm = watermarks.get(name)
        lo = _ceil_to(a, width)
        hi = floor_to(b, width)
        if wm is not None:
            hi = min(hi, floor_to(wm, width))
        if wm is None or hi <= lo:
            cover(a, b, rest)
            return
        cover(a, lo, rest)
        out.append(Segment(name, lo, hi))
        cover(hi, b, rest)

    rollups: tuple[tuple[Source, int], ...] = (("1h", 3600), ("1m", 60))
    levels = [(n, w) for n, w in rollups if bucket_s is None or bucket_s % w == 0]
    cover(start, end, levels)
    return out


def union(
    spec: Spec,
    segments: Sequence[Segment],
    cols: Sequence[Col],
    raw_width_s: int,
    *,
    device: bool,
    keys: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:
    """One UNION ALL over the segments; binds `projects`, `device`, `key_*` come from caller."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    for i, seg in enumerate(segments):
        a, b = f"a{i}", f"b{i}"
        params[a], params[b] = seg.start, seg.end
        if seg.source == "raw":
            parts.append(sql.raw_select(spec, raw_width_s, cols, a, b, device=device, keys=keys))
        else:
            parts.append(sql.rollup_select(spec, seg.source, cols, a, b, device=device, keys=keys))
    if not parts:
        raise ValueError("empty range")
    return " UNION ALL ".join(parts), params
