"""Decoded records to COPY tuples, in the column order of `tables.STREAM_COLUMNS`.

One function per stream, each a tight loop straight from the msgspec structs to tuples:
this runs once per record at tens of thousands of records per second. A test checks that
every tuple lines up with `STREAM_COLUMNS`, so a column change breaks loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from services.core.contracts import AgvRecord, Inspection, LinkKpi, Telemetry, TelemetryText

Row = tuple[Any, ...]
RowBuilder = Callable[[str, str, list[Any], list[datetime], datetime, list[Row]], None]

_encode: Final = msgspec.json.Encoder().encode


def inspection_rows(
    project: str,
    device: str,
    records: list[Inspection],
    times: list[datetime],
    received: datetime,
    out: list[Row],
) -> None:
    for r, ts in zip(records, times, strict=True):
        defects = r.defects
        out.append(
            (
                ts,
                project,
                device,
                r.seq,
                r.station,
                r.part_id,
                r.result == "pass",
                len(defects),
                _encode(defects).decode() if defects else None,
                r.confidence,
                r.inference_ms,
                r.model,
                received,
            )
        )


def agv_rows(
    project: str,
    device: str,
    records: list[AgvRecord],
    times: list[datetime],
    received: datetime,
    out: list[Row],
) -> None:
    for r, ts in zip(records, times, strict=True):
        out.append(
            (
                ts,
                project,
                device,
                r.seq,
                r.x,
                r.y,
                r.heading,
                r.speed,
                r.battery,
                r.state,
                r.localization,
                r.task_id,
                r.error_code,
                received,
            )
        )


def link_rows(
    project: str,
    device: str,
    records: list[LinkKpi],
    times: list[datetime],
    received: datetime,
    out: list[Row],
) -> None:
    for r, ts in zip(records, times, strict=True):
        out.append(
            (
                ts,
                project,
                device,
                r.seq,
                r.rsrp,
                r.sinr,
                r.latency_ms,
                r.rsrq,
                r.jitter_ms,
                r.loss_pct,
                r.ul_mbps,
                r.dl_mbps,
                r.cell_id,
                r.slice,
                received,
            )
        )


def telemetry_rows(
    project: str,
    device: str,
    records: list[Telemetry],
    times: list[datetime],
    received: datetime,
    out: list[Row],
) -> None:
    for r, ts in zip(records, times, strict=True):
        seq = r.seq
        for name, value in r.metrics.items():
            out.append((ts, project, device, seq, name, value, received))


def telemetry_text_rows(
    project: str,
    device: str,
    records: list[TelemetryText],
    times: list[datetime],
    received: datetime,
    out: list[Row],
) -> None:
    for r, ts in zip(records, times, strict=True):
        seq = r.seq
        for name, value in r.metrics.items():
            out.append((ts, project, device, seq, name, value, received))


# Stream name (topic level, or an adapter's item) -> (table name, row builder).
BUILDERS: Final[dict[str, tuple[str, RowBuilder]]] = {
    "inspection": ("inspections", inspection_rows),  # type: ignore[dict-item]
    "agv": ("agv_status", agv_rows),  # type: ignore[dict-item]
    "link": ("link_kpis", link_rows),  # type: ignore[dict-item]
    "telemetry": ("telemetry", telemetry_rows),  # type: ignore[dict-item]
    "telemetry_text": ("telemetry_text", telemetry_text_rows),  # type: ignore[dict-item]
}
