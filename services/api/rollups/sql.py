"""SQL text generated from a `Spec`: raw aggregation, rollup reads, merges and upserts.

Everything is generated from the spec's column list, so the per-minute rollup, the hourly
merge and a query's on-the-fly aggregation of raw rows cannot drift apart. Only values we
generate ourselves (column names, interval widths) are inlined; times and ids are bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.api.rollups.specs import LOOKBACK, Col, Spec

_TS = "CAST(:{p} AS timestamptz)"


def merge_expr(col: Col, source: str = "") -> str:
    """How summaries of one column combine across rows (and how the outer query reads it)."""
    c = f"{source}{col.name}"
    if col.merge == "sum":
        return f"sum({c})"
    if col.merge == "min":
        return f"min({c})"
    if col.merge == "max":
        return f"max({c})"
    if col.merge == "maxts":
        return f"max({c})"
    return f"last({c}, {source}last_ts)"


def filters(
    spec: Spec,
    time_col: str,
    a: str,
    b: str,
    *,
    projects: bool,
    device: bool,
    keys: Sequence[str] = (),
    lookback: bool = False,
) -> str:
    """A WHERE body over bind parameters `a`/`b` (+ `projects`, `device`, `key_<name>`)."""
    start = _TS.format(p=a)
    if lookback:
        start = f"({start} - INTERVAL '{LOOKBACK}')"
    parts = [f"{time_col} >= {start}", f"{time_col} < {_TS.format(p=b)}"]
    if projects:
        parts.append("project_id = ANY(CAST(:projects AS text[]))")
    if device:
        parts.append("device_id = :device")
    for key in keys:
        expr = dict(spec.keys)[key]
        parts.append(f"{expr} = :key_{key}")
    return " AND ".join(parts)


def raw_select(
    spec: Spec,
    width_s: int,
    cols: Sequence[Col],
    a: str,
    b: str,
    *,
    projects: bool = True,
    device: bool = False,
    keys: Sequence[str] = (),
) -> str:
    """Aggregate raw rows into buckets of `width_s` with the rollup's column shape."""
    where = filters(spec, "ts", a, b, projects=projects, device=device, keys=keys)
    lookback = filters(spec, "ts", a, b, projects=projects, device=device, keys=keys, lookback=True)
    key_sel = "".join(f", {expr} AS {name}" for name, expr in spec.keys)
    col_sel = "".join(f", {c.raw} AS {c.name}" for c in cols)
    group = ", ".join(str(i) for i in range(1, 4 + len(spec.keys)))
    src = spec.from_sql.format(where=where, where_lookback=lookback)
    return (
        f"SELECT time_bucket(INTERVAL '{width_s} seconds', ts) AS bucket, project_id, "
        f"device_id{key_sel}{col_sel} FROM {src} GROUP BY {group}"
    )


def rollup_select(
    spec: Spec,
    resolution: str,
    cols: Sequence[Col],
    a: str,
    b: str,
    *,
    projects: bool = True,
    device: bool = False,
    keys: Sequence[str] = (),
) -> str:
    """Rows of one rollup table in [a, b), with the same column shape as `raw_select`."""
    where = filters(spec, "bucket", a, b, projects=projects, device=device, keys=keys)
    names = ", ".join(
        ["bucket", "project_id", "device_id", *spec.key_names, *(c.name for c in cols)]
    )
    return f"SELECT {names} FROM {spec.table(resolution)} WHERE {where}"


def rebucket_select(spec: Spec, width_s: int, cols: Sequence[Col], source_sql: str) -> str:
    """Merge finer summaries per device into buckets of `width_s` (minutes into hours)."""
    key_sel = "".join(f", {k}" for k in spec.key_names)
    col_sel = "".join(f", {merge_expr(c)} AS {c.name}" for c in cols)
    group = ", ".join(str(i) for i in range(1, 4 + len(spec.keys)))
    return (
        f"SELECT time_bucket(INTERVAL '{width_s} seconds', bucket) AS bucket, project_id, "
        f"device_id{key_sel}{col_sel} FROM ({source_sql}) AS src GROUP BY {group}"
    )


def upsert(spec: Spec, resolution: str, select_sql: str) -> str:
    """Insert summaries, replacing buckets already there: re-running a window is harmless.

    Rows go in device by device (then by time), so the buckets of one device that one pass
    writes share heap pages: a series of one device over days reads a page per few dozen
    minutes instead of a page per minute, as a time-ordered insert of every device's
    minutes would leave them (a 7-day, 30-minute-bucket series read 10,080 pages).
    """
    names = ["bucket", "project_id", "device_id", *spec.key_names, *(c.name for c in spec.cols)]
    conflict = ", ".join(["project_id", "device_id", *spec.key_names, "bucket"])
    updates = ", ".join(f"{c.name} = EXCLUDED.{c.name}" for c in spec.cols)
    # Positions in the select list: bucket, project_id, device_id, keys...
    order = ", ".join(str(i) for i in (2, 3, *range(4, 4 + len(spec.keys)), 1))
    return (
        f"INSERT INTO {spec.table(resolution)} ({', '.join(names)}) {select_sql} "
        f"ORDER BY {order} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
