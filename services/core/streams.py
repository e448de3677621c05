"""Each stream's storage, derived from its one definition: the record struct in contracts.py.

A field of a record struct becomes a column of its own name and type (nullable when the
field may be absent), unless its `Meta(extra=...)` says otherwise (`stored`, `explode`; see
contracts.py). Around the fields every stream table has the same frame: `ts`, `project_id`,
`device_id`, `seq` first, `received_at` last, followed only by the columns later migrations
appended to the table (`appended`). Tables (services/core/tables.py), the ingest
row builders (services/protocols/rows.py), the rollup fields (services/api/rollups/specs.py),
replay (services/rules/replay.py) and the load generator (loadtests/payloads.py) all read
`STREAM_DEFS`, so adding a field to a struct adds it everywhere, and the round-trip test
(tests/test_streams_roundtrip.py) sends it through the real ingest and API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from services.core.contracts import (
    AgvRecord,
    Inspection,
    LinkKpi,
    Stored,
    Telemetry,
    TelemetryText,
)

# Python types of the record fields -> column types (the names tables.py maps to SQL).
_SQL_OF: Final[dict[type[mi.Type], str]] = {
    mi.FloatType: "double",
    mi.StrType: "text",
    mi.LiteralType: "text",
    mi.IntType: "bigint",
}


@dataclass(frozen=True)
class Column:
    """One column of a stream table and where its value comes from."""

    name: str
    sql: str  # double | text | boolean | smallint | bigint | jsonb | timestamptz
    nullable: bool
    field: str | None = None  # the record field it stores (None: the frame)
    store: str = ""  # Python expression of the row builder's locals (`r` is the record)
    load: str | None = None  # the field value from the column value `c` (None: not read back)
    rollup: bool = False  # the rollups keep count, sum, min, max and last of it


@dataclass(frozen=True)
class Field:
    """One field of a record struct, as the load generator and the docs see it."""

    name: str
    required: bool
    typical: Any  # what a healthy device sends (see contracts.py), None if it omits it
    degraded: Any = None  # what it sends while faulty (the simulator's fault episodes)


@dataclass(frozen=True)
class StreamDef:
    name: str  # the stream as in topics, or an adapter's item
    table: str
    record: type[msgspec.Struct]  # the struct its rows are built from and replayed into
    columns: tuple[Column, ...]  # in table order
    fields: tuple[Field, ...]  # the record's fields after ts and seq
    explode: str | None = None  # a name -> value field stored as one row per entry

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def rollup_fields(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.rollup)


_HEAD: Final = (
    Column("ts", "timestamptz", False, store="ts"),
    Column("project_id", "text", False, store="project"),
    Column("device_id", "text", False, store="device"),
    Column("seq", "bigint", False, field="seq", store="r.seq", load="c"),
)
_TAIL: Final = (Column("received_at", "timestamptz", False, store="received"),)


def _unwrap(t: mi.Type) -> tuple[mi.Type, bool, dict[str, Any]]:
    """(base type, may be None, Meta extra) of a field type."""
    nullable = False
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        nullable = len(others) < len(t.types)
        if len(others) != 1:
            raise TypeError(f"a stored field must have one type besides None, not {t}")
        t = others[0]
    extra: dict[str, Any] = {}
    if isinstance(t, mi.Metadata):
        extra = dict(t.extra or {})
        t = t.type
    return t, nullable, extra


def _stored(field: str, s: Stored, value: str) -> Column:
    return Column(
        s.column, s.sql, s.nullable, field, s.store.format(v=value), s.load, rollup=s.rollup
    )


def define(name: str, table: str, record: type[msgspec.Struct]) -> StreamDef:
    """The stream `name` stored in `table`, derived from the fields of `record`."""
    info = mi.type_info(record)
    assert isinstance(info, mi.StructType)
    columns = list(_HEAD)
    appended: list[Column] = []
    fields: list[Field] = []
    explode: str | None = None
    for f in info.fields:
        if f.name in ("ts", "seq"):
            continue
        base, nullable, extra = _unwrap(f.type)
        fields.append(Field(f.name, f.required, extra.get("typical"), extra.get("degraded")))
        if "explode" in extra:
            explode = f.name
            columns += [_stored(f.name, s, s.store) for s in extra["explode"]]
        elif "stored" in extra:
            columns += [_stored(f.name, s, f"r.{f.name}") for s in extra["stored"]]
        else:
            sql = _SQL_OF.get(type(base))
            if sql is None:
                raise TypeError(f"{record.__name__}.{f.name}: no column type for {base}")
            rollup = bool(extra.get("rollup"))
            column = Column(f.name, sql, nullable, f.name, f"r.{f.name}", "c", rollup)
            (appended if extra.get("appended") else columns).append(column)
    columns += _TAIL
    columns += appended
    return StreamDef(name, table, record, tuple(columns), tuple(fields), explode)


# The native streams (topic level -> table), then what only protocol adapters produce.
STREAM_DEFS: Final[dict[str, StreamDef]] = {
    d.name: d
    for d in (
        define("inspection", "inspections", Inspection),
        define("agv", "agv_status", AgvRecord),
        define("link", "link_kpis", LinkKpi),
        define("telemetry", "telemetry", Telemetry),
    )
}
INGEST_DEFS: Final[dict[str, StreamDef]] = {
    **STREAM_DEFS,
    "telemetry_text": define("telemetry_text", "telemetry_text", TelemetryText),
}
