"""Renders the field tables of docs/device-guide.md from the stream definitions.

Names, required-ness, types and ranges come from the record structs (contracts.py), the
meaning of each field from the published JSON Schema's `description` (tests/test_streams.py
proves the two agree field by field). tests/test_streams.py checks the page holds exactly
these tables; `python -m services.core.streams_doc` rewrites them in place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

import msgspec.inspect as mi

from services.core.contracts import RECORD_TYPES, load_schema

GUIDE: Final = Path(__file__).resolve().parents[2] / "docs" / "device-guide.md"
_HEADER: Final = ("| field | required | type | meaning |", "| --- | --- | --- | --- |")


def _type(name: str, t: mi.Type, schema_node: dict[str, Any]) -> str:
    if name == "ts":
        return "RFC 3339 string or epoch ms"
    if isinstance(t, mi.UnionType):
        (t,) = (x for x in t.types if not isinstance(x, mi.NoneType))
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.IntType):
        return f"integer ≥ {t.ge}"
    if isinstance(t, mi.FloatType):
        return f"number {t.ge:g}..{t.le:g}"
    if isinstance(t, mi.LiteralType):  # in the schema's order, which is the declared one
        return " \\| ".join(f"`{v}`" for v in schema_node["enum"])
    if isinstance(t, mi.StrType):
        return f"string (≤ {t.max_length} chars)"
    if isinstance(t, mi.ListType):
        return "array"
    if isinstance(t, mi.DictType):
        return "object"
    raise TypeError(f"{name}: no documented type for {t}")


def render_table(stream: str) -> list[str]:
    """The field table of `stream` as Markdown lines."""
    info = mi.type_info(RECORD_TYPES[stream])
    assert isinstance(info, mi.StructType)
    props = load_schema(stream)["$defs"]["record"]["properties"]
    lines = list(_HEADER)
    for f in info.fields:
        node = props[f.name]
        required = "yes" if f.required else ""
        meaning = node.get("description", "")
        lines.append(f"| `{f.name}` | {required} | {_type(f.name, f.type, node)} | {meaning} |")
    return lines


def sync(page: str) -> str:
    """`page` with the table after each stream's section heading replaced by its rendering."""
    lines = page.split("\n")
    for stream in RECORD_TYPES:
        heading = next(
            (i for i, line in enumerate(lines) if line.startswith(f"## `{stream}`")), None
        )
        if heading is None:
            raise ValueError(f"the page has no section for the {stream!r} stream")
        start = lines.index(_HEADER[0], heading)
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = render_table(stream)
    return "\n".join(lines)


def main() -> int:
    GUIDE.write_text(sync(GUIDE.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
