"""One definition per stream: the structs in contracts.py, and everything derived from them.

The structs must agree with the published JSON Schemas field by field; tables, row builders,
rollup fields and replay come from them and must line up with each other and with the
database the (frozen) migrations build.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import sqlalchemy as sa

from services.api.rollups.specs import SPECS, STREAM_SPECS
from services.core import db
from services.core.contracts import RECORD_TYPES, decode, load_schema
from services.core.streams import INGEST_DEFS, STREAM_DEFS, define
from services.core.streams_doc import GUIDE, sync
from services.core.tables import STREAM_COLUMNS
from services.protocols.rows import BUILDERS, builder_source
from tests.streams_support import distinctive, exploded, mismatches

STREAMS = sorted(STREAM_DEFS)


def _unwrap(t: mi.Type) -> tuple[mi.Type, bool]:
    nullable = False
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        nullable = len(others) < len(t.types)
        (t,) = others
    return (t.type if isinstance(t, mi.Metadata) else t), nullable


def _struct_view(t: mi.Type) -> dict[str, Any]:
    """The JSON Schema keywords a msgspec type stands for (the ones the contract uses)."""
    base, _ = _unwrap(t)
    if isinstance(base, mi.FloatType):
        return {"type": "number", "minimum": base.ge, "maximum": base.le}
    if isinstance(base, mi.IntType):
        return {"type": "integer", "minimum": base.ge, "maximum": base.le}
    if isinstance(base, mi.LiteralType):
        return {"enum": sorted(base.values)}
    if isinstance(base, mi.StrType):
        view: dict[str, Any] = {"type": "string"}
        for key, value in (
            ("minLength", base.min_length),
            ("maxLength", base.max_length),
            ("pattern", base.pattern),
        ):
            if value is not None:
                view[key] = value
        return view
    if isinstance(base, mi.ListType):
        return {"type": "array", "maxItems": base.max_length, "items": _struct_view(base.item_type)}
    if isinstance(base, mi.StructType):
        return {
            "type": "object",
            "required": sorted(f.name for f in base.fields if f.required),
            "properties": {f.name: _struct_view(f.type) for f in base.fields},
        }
    if isinstance(base, mi.DictType):
        return {
            "type": "object",
            "minProperties": base.min_length,
            "maxProperties": base.max_length,
            "propertyNames": _struct_view(base.key_type),
            "additionalProperties": _struct_view(base.value_type),
        }
    raise TypeError(f"no JSON Schema view of {base}")


def _schema_view(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The same keywords from the published schema (refs resolved, prose left out)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    # Property names are strings by definition: their schema may leave out the type.
    kind = node.get("type", "string" if "pattern" in node else None)
    if "enum" in node:
        return {"enum": sorted(node["enum"])}
    if kind in ("number", "integer"):
        return {"type": kind, "minimum": node.get("minimum"), "maximum": node.get("maximum")}
    if kind == "string":
        keys = ("minLength", "maxLength", "pattern")
        return {"type": "string", **{k: node[k] for k in keys if k in node}}
    if kind == "array":
        return {
            "type": "array",
            "maxItems": node.get("maxItems"),
            "items": _schema_view(schema, node["items"]),
        }
    if kind == "object" and "properties" in node:
        return {
            "type": "object",
            "required": sorted(node.get("required", [])),
            "properties": {k: _schema_view(schema, v) for k, v in node["properties"].items()},
        }
    if kind == "object":
        return {
            "type": "object",
            "minProperties": node.get("minProperties"),
            "maxProperties": node.get("maxProperties"),
            "propertyNames": _schema_view(schema, node["propertyNames"]),
            "additionalProperties": _schema_view(schema, node["additionalProperties"]),
        }
    raise TypeError(f"no view of schema node {node}")


@pytest.mark.parametrize("stream", STREAMS)
def test_structs_agree_with_the_json_schemas_field_by_field(stream: str) -> None:
    schema = load_schema(stream)
    record = schema["$defs"]["record"]
    info = mi.type_info(RECORD_TYPES[stream])
    assert isinstance(info, mi.StructType)
    assert [f.name for f in info.fields] == list(record["properties"])
    assert sorted(f.name for f in info.fields if f.required) == sorted(record["required"])
    assert record["additionalProperties"] is False
    assert info.forbid_unknown_fields
    for f in info.fields:
        if f.name == "ts":  # RFC 3339 or epoch ms: checked by test_contracts' examples
            continue
        expected = _schema_view(schema, record["properties"][f.name])
        assert _struct_view(f.type) == expected, f.name


def test_the_schema_comparison_sees_a_changed_bound() -> None:
    schema = load_schema("link")
    node = schema["$defs"]["record"]["properties"]["rsrq"]
    assert _struct_view(mi.FloatType(ge=-43, le=20)) == _schema_view(schema, node)
    assert _struct_view(mi.FloatType(ge=-40, le=20)) != _schema_view(schema, node)


def _rows(stream: str, body: dict[str, Any]) -> tuple[msgspec.Struct, list[tuple[Any, ...]]]:
    decoded = decode(stream, msgspec.json.encode(body))
    _, build = BUILDERS[stream]
    out: list[tuple[Any, ...]] = []
    build("p1", "d1", decoded.records, decoded.times, datetime.now(UTC), out)
    return decoded.records[0], out


@pytest.mark.parametrize("stream", STREAMS)
def test_row_tuples_line_up_with_stream_columns(stream: str) -> None:
    d = STREAM_DEFS[stream]
    sent, rows = _rows(stream, distinctive(stream, 1, 1_700_000_000_000))
    columns = STREAM_COLUMNS[d.table]
    assert columns == d.column_names
    assert all(len(row) == len(columns) for row in rows), builder_source(d)
    stored = [dict(zip(columns, row, strict=True)) for row in rows]
    assert all((r["project_id"], r["device_id"], r["seq"]) == ("p1", "d1", 1001) for r in stored)
    if d.explode:
        assert exploded(d, stored) == getattr(sent, d.explode)
    else:
        (row,) = stored
        assert mismatches(d, sent, row) == [], builder_source(d)


def test_the_check_fails_when_a_field_is_dropped() -> None:
    """A definition without one field (here link's jitter_ms) stores everything but it: the
    same check the round trip uses must name the field."""
    full = STREAM_DEFS["link"]
    dropped = full.columns[8].name
    fields = [
        (f.name, f.type, f.default)
        for f in msgspec.structs.fields(full.record)
        if f.name != dropped
    ]
    reduced = define("link", "link_kpis", msgspec.defstruct("LinkKpi", fields, kw_only=True))
    sent, rows = _rows("link", distinctive("link", 2, 1_700_000_000_000))
    row = dict(zip(full.column_names, rows[0], strict=True))
    del row[dropped]
    assert mismatches(reduced, sent, row) == [f"link.{dropped} is not stored"]
    # and a swapped column is caught too
    row = dict(zip(full.column_names, rows[0], strict=True))
    row["rsrp"], row["sinr"] = row["sinr"], row["rsrp"]
    assert len(mismatches(full, sent, row)) == 2


def test_rollups_aggregate_what_the_definitions_mark() -> None:
    for stream, spec_name in STREAM_SPECS.items():
        d = STREAM_DEFS[stream]
        assert SPECS[spec_name].fields == d.rollup_fields
        numeric = {c.name for c in d.columns if c.sql in ("double", "smallint") and c.field}
        assert set(d.rollup_fields) <= numeric
    # Every numeric field the devices send is aggregated somewhere.
    assert STREAM_DEFS["link"].rollup_fields == tuple(
        c.name for c in STREAM_DEFS["link"].columns if c.sql == "double"
    )


_SQL_TYPES = {
    "double": "double precision",
    "text": "text",
    "boolean": "boolean",
    "smallint": "smallint",
    "bigint": "bigint",
    "jsonb": "jsonb",
    "timestamptz": "timestamp with time zone",
}


def test_stream_tables_match_the_migrated_database(database_url: str) -> None:
    """The migrations are frozen SQL; the definitions are live code: they must agree."""
    engine = sa.create_engine(db.sync_url(database_url))
    try:
        with engine.connect() as conn:
            for d in INGEST_DEFS.values():
                got = conn.execute(
                    sa.text(
                        "SELECT column_name, data_type, is_nullable = 'YES' "
                        "FROM information_schema.columns WHERE table_name = :t "
                        "ORDER BY ordinal_position"
                    ),
                    {"t": d.table},
                ).all()
                expected = [(c.name, _SQL_TYPES[c.sql], c.nullable) for c in d.columns]
                assert [tuple(r) for r in got] == expected, d.table
    finally:
        engine.dispose()


def test_device_guide_field_tables_are_generated() -> None:
    """docs/device-guide.md's field tables are rendered from the definitions; regenerate them
    with `python -m services.core.streams_doc`."""
    page = GUIDE.read_text()
    assert sync(page) == page
    # A hand edit of a table is seen.
    edited = page.replace("| `jitter_ms` |  | number 0..60000 |", "| `jitter_ms` | yes | number |")
    assert edited != page
    assert sync(edited) == page
