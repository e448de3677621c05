"""Records with every field set to a distinctive value, and the check that each came back.

Both are generated from the stream definitions (the structs in services/core/contracts.py),
so a field added to a stream is sent and checked without any test naming it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from services.core.contracts import RECORD_TYPES
from services.core.streams import StreamDef
from services.rules.replay import loader


def _unwrap(t: mi.Type) -> mi.Type:
    if isinstance(t, mi.UnionType):
        (t,) = (x for x in t.types if not isinstance(x, mi.NoneType))
    return t.type if isinstance(t, mi.Metadata) else t


def _value(t: mi.Type, k: int, salt: int) -> Any:
    """A valid value of type `t`, different for each field index `k` and record `salt`."""
    t = _unwrap(t)
    if isinstance(t, mi.FloatType):
        lo = max(-1e6, t.ge if t.ge is not None else -1e6)
        hi = min(1e6, t.le if t.le is not None else 1e6)
        return round(lo + (hi - lo) * (0.05 + 0.04 * k + 0.003 * salt), 3)
    if isinstance(t, mi.LiteralType):
        values = sorted(t.values)
        return values[(k + salt + 1) % len(values)]
    if isinstance(t, mi.StrType):
        return f"v{k}-{salt}-x"[: t.max_length or 64]
    if isinstance(t, mi.ListType):
        item = _unwrap(t.item_type)
        assert isinstance(item, mi.StructType), t
        return [{f.name: _value(f.type, k + i, salt) for i, f in enumerate(item.fields)}]
    if isinstance(t, mi.DictType):
        return {f"m{k}_{salt}_{i}": _value(t.value_type, k + i, salt) for i in range(3)}
    raise TypeError(f"no distinctive value for {t}")


def distinctive(stream: str, salt: int, ts_ms: int) -> dict[str, Any]:
    """A record of `stream` with every field of its struct set (optional ones too)."""
    info = mi.type_info(RECORD_TYPES[stream])
    assert isinstance(info, mi.StructType)
    body: dict[str, Any] = {"ts": ts_ms, "seq": 1000 + salt}
    for k, f in enumerate(info.fields):
        if f.name not in body:
            body[f.name] = _value(f.type, k, salt)
    return body


def mismatches(d: StreamDef, sent: msgspec.Struct, stored: dict[str, Any]) -> list[str]:
    """Every field of `sent` that `stored` (a row as column -> value, from the database or
    the API) does not give back: each field must be stored in a column it is read back from."""
    problems: list[str] = []
    readable = {c.field for c in d.columns if c.field is not None and c.load is not None}
    missing = [c.name for c in d.columns if c.field is not None and c.name not in stored]
    if missing:
        problems.append(f"columns {missing} are not in {sorted(stored)}")
        return problems
    back = loader(d)(stored, 0)
    for name in sent.__struct_fields__:
        if name == "ts":
            continue
        if name not in readable:
            problems.append(f"{d.name}.{name} is not stored")
        elif getattr(back, name) != getattr(sent, name):
            problems.append(
                f"{d.name}.{name}: sent {getattr(sent, name)!r}, got {getattr(back, name)!r}"
            )
    return problems


def exploded(d: StreamDef, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The name -> value map a stream stored one row per entry (telemetry) gives back."""
    name, value = (c.name for c in d.columns if c.field == d.explode)
    return {row[name]: row[value] for row in rows}
