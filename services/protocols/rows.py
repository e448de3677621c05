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

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from services.core.contracts import payload_decoder
from services.core.streams import INGEST_DEFS, STREAM_DEFS, StreamDef

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


# --------------------------------------------------------------------------- fast path
#
# Ingest's per-message cost is mostly interpreter overhead between small steps (decode,
# convert each ts, check the clock window, build the rows), not any one step. A fast
# builder does all of it in one generated function per native stream: decode with the
# contract's own decoder, convert epoch-ms timestamps, check them against the window bounds
# `lo` < ts < `hi` (epoch ms, which the caller narrows by a margin so that a ts the exact
# check would refuse never passes), and append the rows. Anything else raises: the caller
# then drops the rows appended so far and takes the exact path (`contracts.decode` and
# the window checks), which gives the precise dead letter. A message lands whole or not
# at all either way. RFC 3339 timestamps go through `slow_ts(value, received)`, which
# converts and checks them exactly or raises.

FastBuilder = Callable[
    [bytes, str, str, float, float, datetime, list[Row], Callable[[Any, datetime], datetime]],
    None,
]


def fast_source(d: StreamDef) -> str:
    """The Python source of the fast builder of native stream `d` (exec'd once)."""
    lines = [
        f"def {d.name}_fast(payload, project, device, lo, hi, received, out, slow_ts):",
        "    decoded = _decode(payload)",
        "    for r in (decoded if decoded.__class__ is list else (decoded,)):",
        "        ts = r.ts",
        "        if ts.__class__ is int and lo < ts < hi:",
        "            ts = _fromtimestamp(ts / 1000, _UTC)",
        "        else:",
        "            ts = slow_ts(ts, received)",
    ]
    if d.explode is None:
        row = ", ".join(c.store for c in d.columns)
        lines.append(f"        out.append(({row},))")
    else:
        row = ", ".join("seq" if c.name == "seq" else c.store for c in d.columns)
        lines += ["        seq = r.seq", f"        for name, value in r.{d.explode}.items():"]
        if d.name in FINITE_CHECKED:
            lines.append("            if not _isfinite(value): raise ValueError(name)")
        lines.append(f"            out.append(({row},))")
    return "\n".join([*lines, ""])


# Streams whose values `contracts.decode` checks to be finite; the fast path does the same.
FINITE_CHECKED: Final = frozenset({"telemetry"})


def _compile_fast(d: StreamDef, decoder: msgspec.json.Decoder[Any]) -> FastBuilder:
    namespace: dict[str, Any] = {
        "_encode": _encode,
        "_decode": decoder.decode,
        "_fromtimestamp": datetime.fromtimestamp,
        "_UTC": UTC,
        "_isfinite": math.isfinite,
    }
    exec(compile(fast_source(d), f"<fast rows of {d.name}>", "exec"), namespace)
    build: FastBuilder = namespace[f"{d.name}_fast"]
    return build


def _fast_builders() -> dict[str, tuple[str, FastBuilder]]:
    out: dict[str, tuple[str, FastBuilder]] = {}
    for name, d in STREAM_DEFS.items():
        decoder = payload_decoder(name)
        if decoder is not None:
            out[name] = (d.table, _compile_fast(d, decoder))
    return out


# Native stream (topic level) -> (table name, fast builder).
FAST_BUILDERS: Final[dict[str, tuple[str, FastBuilder]]] = _fast_builders()
