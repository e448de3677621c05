"""PostgreSQL binary COPY rows built with numpy, so tens of millions of rows cost seconds.

A binary COPY row is a field count and, per field, a length and the bytes. When every
field has a fixed width within a batch (numbers, timestamps, constant or equal-length
text), a batch is one numpy structured array whose memory *is* the wire format. Callers
split rows into batches of equal text lengths (e.g. by AGV state) to keep that true.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER: Final = b"\xff\xff"
PG_EPOCH_US: Final = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_TYPES: Final = {"ts": ">i8", "f8": ">f8", "i8": ">i8", "i2": ">i2", "bool": "?"}


@dataclass(frozen=True)
class Field:
    kind: str  # ts | f8 | i8 | i2 | bool | text | jsonb | null
    value: Any = None  # array (numbers, epoch µs for ts) or bytes (text/jsonb constant)


def to_pg_us(epoch_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Unix seconds -> microseconds since 2000-01-01, PostgreSQL's timestamp encoding."""
    return (epoch_s * 1_000_000).astype(np.int64) - PG_EPOCH_US


def encode(n: int, fields: Sequence[Field]) -> bytes:
    """`n` rows in binary COPY format (without header/trailer)."""
    if n == 0:
        return b""
    dtype: list[tuple[str, Any]] = [("nf", ">i2")]
    plan: list[tuple[int, int, Field]] = []
    for i, f in enumerate(fields):
        dtype.append((f"l{i}", ">i4"))
        if f.kind == "null":
            plan.append((i, -1, f))
            continue
        if f.kind in ("text", "jsonb"):
            raw = f.value if isinstance(f.value, bytes) else None
            width = len(raw) + (f.kind == "jsonb") if raw is not None else f.value.dtype.itemsize
            dtype.append((f"v{i}", f"S{width}"))
            plan.append((i, width, f))
        else:
            np_type = np.dtype(_TYPES[f.kind])
            dtype.append((f"v{i}", np_type))
            plan.append((i, np_type.itemsize, f))
    arr = np.empty(n, dtype=np.dtype(dtype))
    arr["nf"] = len(fields)
    for i, width, f in plan:
        arr[f"l{i}"] = width
        if width < 0:
            continue
        if f.kind == "jsonb":
            arr[f"v{i}"] = b"\x01" + f.value
        else:
            arr[f"v{i}"] = f.value
    return arr.tobytes()
