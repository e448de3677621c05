"""Decoded records to COPY tuples, in the column order of `tables.STREAM_COLUMNS`.

One function per stream, each a tight loop straight from the msgspec structs to tuples:
this runs once per record at tens of thousands of records per second. The functions are
generated once, at import, from the stream definitions (services/core/streams.py) as plain
Python source: the same attribute reads and one tuple display per row a hand-written loop
has, so a field added to a struct is stored without anyone spelling it here, at no cost per
row (`python -m loadtests.bench_rows`). `out.append(...)` is spelled out in the loop:
CPython specialises that call for lists, which a bound `append` local would forgo.
tests/test_streams.py checks that every tuple lines up with `STREAM_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from services.core.streams import INGEST_DEFS, StreamDef

Row = tuple[Any, ...]
RowBuilder = Callable[[str, str, list[Any], list[datetime], datetime, list[Row]], None]

_encode: Final = msgspec.json.Encoder().encode


def builder_source(d: StreamDef) -> str:
    """The Python source of the row builder of `d` (exec'd once; shown by tests on failure)."""
    head = [
        f"def {d.name}_rows(project, device, records, times, received, out):",
        "    for r, ts in zip(records, times, strict=True):",
    ]
    if d.explode is None:
        row = ", ".join(c.store for c in d.columns)
        return "\n".join([*head, f"        out.append(({row},))", ""])
    # A name -> value map: one row per entry, the entry's name and value in its columns.
    row = ", ".join("seq" if c.name == "seq" else c.store for c in d.columns)
    return "\n".join(
        [
            *head,
            "        seq = r.seq",
            f"        for name, value in r.{d.explode}.items():",
            f"            out.append(({row},))",
            "",
        ]
    )


def _compile(d: StreamDef) -> RowBuilder:
    namespace: dict[str, Any] = {"_encode": _encode}
    exec(compile(builder_source(d), f"<rows of {d.name}>", "exec"), namespace)
    build: RowBuilder = namespace[f"{d.name}_rows"]
    return build


# Stream name (topic level, or an adapter's item) -> (table name, row builder).
BUILDERS: Final[dict[str, tuple[str, RowBuilder]]] = {
    name: (d.table, _compile(d)) for name, d in INGEST_DEFS.items()
}
