"""Every field of every stream, through the real ingest and back out of the database and API.

A record per native stream with every field set to a distinctive value (optional ones too)
is published over a real broker to the real ingest; the stored row must give each field back
(read as replay reads it), so must the API's device page (its last values), and the series
of every field the rollups aggregate must hold the sent value. The records and the checks
are generated from the stream definitions (tests/streams_support.py): a field added to a
struct is covered without this test naming it, and one the storage dropped fails it
(tests/test_streams.py proves the check names a dropped field).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from f5gdev.devstack.servers import Mosquitto
from services.api.app import make_engine
from services.api.rollups import maintain
from services.core.contracts import decode
from services.core.db import asyncpg_dsn
from services.core.settings import load_settings
from services.core.streams import STREAM_DEFS
from services.protocols.rows import BUILDERS
from tests.streams_support import distinctive, exploded, mismatches
from tests.test_api_support import api_settings, auth, client, make_keys
from tests.test_ingest_helpers import publish, running, scalar, topic, wait_until

PROJECT = "p1"


async def _stored(url: str, table: str, device: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(f"SELECT * FROM {table} WHERE device_id = $1", device)
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_every_field_of_every_stream_comes_back(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        database={"url": url},
        mqtt={"host": "127.0.0.1", "port": broker.port},
        ingest={"client_id": f"ingest-{tag}", "share_group": f"g-{tag}", "metrics_port": 0},
    )
    # Whole minutes in the past, so the minute rollups close over them.
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    ts_ms = int((t0 + timedelta(seconds=10)).timestamp() * 1000)
    bodies = {s: distinctive(s, i + 1, ts_ms) for i, s in enumerate(sorted(STREAM_DEFS))}
    payloads = {s: msgspec.json.encode(b) for s, b in bodies.items()}
    sent = {s: decode(s, p).records[0] for s, p in payloads.items()}
    devices = {s: f"rt-{s}" for s in STREAM_DEFS}
    expected_rows = {
        s: len(getattr(sent[s], d.explode)) if d.explode else 1 for s, d in STREAM_DEFS.items()
    }

    async with running(settings):
        await publish(
            broker.port, [(topic(PROJECT, s, devices[s]), p) for s, p in payloads.items()]
        )

        async def landed() -> bool:
            for s, d in STREAM_DEFS.items():
                n = await scalar(
                    url, f"SELECT count(*) FROM {d.table} WHERE device_id = '{devices[s]}'"
                )
                if int(n) < expected_rows[s]:
                    return False
            return True

        await wait_until(landed, 30)

    # The database: each field read back from its column(s).
    problems: list[str] = []
    for s, d in STREAM_DEFS.items():
        rows = await _stored(url, d.table, devices[s])
        assert len(rows) == expected_rows[s], (s, rows)
        assert all(r["ts"] == t0 + timedelta(seconds=10) and r["seq"] == sent[s].seq for r in rows)
        if d.explode:
            if exploded(d, rows) != getattr(sent[s], d.explode):
                problems.append(f"{s}: stored {exploded(d, rows)}")
        else:
            problems += mismatches(d, sent[s], rows[0])
    assert problems == []

    engine = make_engine(api_settings(url))
    try:
        await maintain.catch_up(engine)
    finally:
        await engine.dispose()
    k = await make_keys(url)
    window = {
        "start": (t0 - timedelta(minutes=1)).isoformat(),
        "end": (t0 + timedelta(minutes=2)).isoformat(),
        "bucket": 60,
    }
    async with client(api_settings(url)) as (_, c):
        for s, d in STREAM_DEFS.items():
            # The device page's last values.
            r = await c.get(
                f"/api/v1/projects/{PROJECT}/devices/{devices[s]}", headers=auth(k.read_p1)
            )
            assert r.status_code == 200, r.text
            last = r.json()["last"][s]
            if d.explode:
                got = {name: v["value"] for name, v in last.items()}
                if got != getattr(sent[s], d.explode):
                    problems.append(f"{s}: device page {got}")
            else:
                problems += [f"device page: {p}" for p in mismatches(d, sent[s], last)]

            # The series of every aggregated field (telemetry: every metric) holds the value.
            out: list[tuple[Any, ...]] = []
            BUILDERS[s][1](PROJECT, devices[s], [sent[s]], [t0], t0, out)
            rows = [dict(zip(d.column_names, row, strict=True)) for row in out]
            series = (
                [(row["metric"], row["value"]) for row in rows]
                if d.explode
                else [(f, rows[0][f]) for f in d.rollup_fields]
            )
            assert series
            for field, value in series:
                r = await c.get(
                    f"/api/v1/projects/{PROJECT}/series",
                    params={"stream": s, "field": field, "device": devices[s], **window},
                    headers=auth(k.read_p1),
                )
                assert r.status_code == 200, r.text
                points = [p for p in r.json()["points"] if p["count"]]
                got_points = [(p["count"], p["min"], p["max"], p["last"]) for p in points]
                if got_points != [(1, value, value, value)]:
                    problems.append(f"series {s}.{field}: sent {value}, got {got_points}")
    assert problems == []
