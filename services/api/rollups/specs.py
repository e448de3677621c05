"""What each rollup holds, as data, so tables, maintenance SQL and queries agree.

Every rollup row is a mergeable summary of the raw rows of one device (and, for telemetry,
one metric) in one bucket: counts and sums add, minima and maxima combine, the last value is
the one with the latest timestamp. Percentiles cannot be merged from those, so the 5G latency
keeps a fixed histogram; quality bands are counts. The same column list produces the raw
aggregation SQL, the minute-to-hour merge and the tables, which is what keeps all three
paths identical and lets a query mix them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import BigInteger, Column, DateTime, Double, Index, MetaData, Table, Text

from services.core.streams import STREAM_DEFS

Merge = Literal["sum", "min", "max", "last", "maxts"]

RESOLUTIONS: Final[dict[str, int]] = {"1m": 60, "1h": 3600}

# 5G latency histogram upper edges in ms; the last bucket is open-ended.
LATENCY_EDGES_MS: Final[tuple[float, ...]] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 50,
    60, 80, 100, 150, 200, 300, 500, 1000, 2000, 5000,
)  # fmt: skip
# Signal quality bands (lower bounds, best first): excellent, good, fair, poor.
RSRP_BANDS_DBM: Final[tuple[float, ...]] = (-80.0, -90.0, -100.0)
SINR_BANDS_DB: Final[tuple[float, ...]] = (20.0, 13.0, 0.0)
BAND_NAMES: Final[tuple[str, ...]] = ("excellent", "good", "fair", "poor")
LOW_BATTERY_PCT: Final = 20.0
# Rows before a window that the e-stop edge detection looks back at.
LOOKBACK: Final = "5 minutes"


@dataclass(frozen=True)
class Col:
    name: str
    merge: Merge
    raw: str  # aggregate over raw rows
    integer: bool = False


@dataclass(frozen=True)
class Spec:
    name: str
    source: str  # raw table
    # FROM clause; `{where}` is the row filter, `{where_lookback}` the same reaching
    # LOOKBACK earlier (for window functions that need the preceding row).
    from_sql: str
    keys: tuple[tuple[str, str], ...] = ()  # extra group keys: (column, raw expression)
    # numeric fields with n/sum/min/max/last: those the stream definition marks "rollup"
    fields: tuple[str, ...] = ()
    extra: tuple[Col, ...] = ()
    cols: tuple[Col, ...] = field(init=False)

    def __post_init__(self) -> None:
        cols = [Col("n", "sum", "count(*)", True), Col("last_ts", "maxts", "max(ts)")]
        for f in self.fields:
            cols += [
                Col(f"{f}_n", "sum", f"count({f})", True),
                Col(f"{f}_sum", "sum", f"sum({f})"),
                Col(f"{f}_min", "min", f"min({f})"),
                Col(f"{f}_max", "max", f"max({f})"),
                Col(f"{f}_last", "last", f"last({f}, ts)"),
            ]
        object.__setattr__(self, "cols", (*cols, *self.extra))

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    def table(self, resolution: str) -> str:
        return f"rollup_{self.name}_{resolution}"


def _count(name: str, cond: str) -> Col:
    return Col(name, "sum", f"count(*) FILTER (WHERE {cond})", True)


def _bands(name: str, column: str, lows: tuple[float, ...]) -> tuple[Col, ...]:
    out: list[Col] = []
    upper: float | None = None
    for i, low in enumerate((*lows, None)):
        conds = [f"{column} >= {low}"] if low is not None else []
        if upper is not None:
            conds.append(f"{column} < {upper}")
        out.append(_count(f"{name}_b{i}", " AND ".join(conds)))
        upper = low
    return tuple(out)


def _histogram() -> tuple[Col, ...]:
    out: list[Col] = []
    lower: float | None = None
    for i, upper in enumerate((*LATENCY_EDGES_MS, None)):
        conds: list[str] = []
        if lower is not None:
            conds.append(f"latency_ms >= {lower}")
        if upper is not None:
            conds.append(f"latency_ms < {upper}")
        out.append(_count(f"lat_h{i:02d}", " AND ".join(conds)))
        lower = upper
    return tuple(out)


AGV_STATES: Final = ("idle", "moving", "charging", "loading", "error", "estop")

SPECS: Final[dict[str, Spec]] = {
    s.name: s
    for s in (
        Spec(
            "inspection",
            "inspections",
            "inspections WHERE {where}",
            fields=STREAM_DEFS["inspection"].rollup_fields,
            extra=(_count("passed_n", "passed"),),
        ),
        Spec(
            "defects",
            "inspections",
            "inspections CROSS JOIN LATERAL jsonb_array_elements("
            "CASE WHEN jsonb_typeof(defects) = 'array' THEN defects ELSE '[]'::jsonb END) AS d "
            "WHERE NOT passed AND {where}",
            keys=(("defect_type", "d->>'type'"),),
        ),
        Spec(
            "agv",
            "agv_status",
            # OFFSET 0 plans the row read on its own: without it the window's ordering
            # draws the planner to the unique key (project_id, device_id, ts), which for a
            # one-minute edge walks every row of the project in the chunk (a day of index,
            # most of a 24 h KPI summary's time); on its own it takes the time index.
            "(SELECT *, lag(state) OVER (PARTITION BY project_id, device_id ORDER BY ts) "
            "AS prev_state FROM (SELECT * FROM agv_status WHERE {where_lookback} OFFSET 0) "
            "AS r) AS s WHERE {where}",
            fields=STREAM_DEFS["agv"].rollup_fields,
            extra=(
                *(_count(f"{st}_n", f"state = '{st}'") for st in AGV_STATES),
                _count("lowbatt_n", f"battery < {LOW_BATTERY_PCT}"),
                _count("estop_entries", "state = 'estop' AND prev_state IS DISTINCT FROM 'estop'"),
            ),
        ),
        Spec(
            "link",
            "link_kpis",
            "link_kpis WHERE {where}",
            fields=STREAM_DEFS["link"].rollup_fields,
            extra=(
                *_bands("rsrp", "rsrp", RSRP_BANDS_DBM),
                *_bands("sinr", "sinr", SINR_BANDS_DB),
                *_histogram(),
            ),
        ),
        Spec(
            "telemetry",
            "telemetry",
            "telemetry WHERE {where}",
            keys=(("metric", "metric"),),
            fields=STREAM_DEFS["telemetry"].rollup_fields,
        ),
    )
}

# Stream name (as in topics) -> spec with its numeric fields.
STREAM_SPECS: Final[dict[str, str]] = {
    "inspection": "inspection",
    "agv": "agv",
    "link": "link",
    "telemetry": "telemetry",
}

metadata = MetaData()


def _build_table(spec: Spec, resolution: str) -> Table:
    cols: list[Column[Any]] = [
        Column("bucket", DateTime(timezone=True), nullable=False),
        Column("project_id", Text, nullable=False),
        Column("device_id", Text, nullable=False),
        *(Column(k, Text, nullable=False) for k in spec.key_names),
    ]
    for c in spec.cols:
        if c.merge == "maxts":
            cols.append(Column(c.name, DateTime(timezone=True), nullable=False))
        elif c.integer:
            cols.append(Column(c.name, BigInteger, nullable=False))
        else:
            cols.append(Column(c.name, Double, nullable=True))
    name = spec.table(resolution)
    return Table(
        name,
        metadata,
        *cols,
        Index(f"uq_{name}", "project_id", "device_id", *spec.key_names, "bucket", unique=True),
        Index(f"ix_{name}_project_bucket", "project_id", "bucket"),
    )


ROLLUP_TABLES: Final[dict[tuple[str, str], Table]] = {
    (s.name, r): _build_table(s, r) for s in SPECS.values() for r in RESOLUTIONS
}
