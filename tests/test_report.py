"""Evidence report, loss ledger and CSV exports against hand-made data in the real database.

Every figure is checked against a value computed by hand from the rows the test writes:
sequences with a gap, a repeat, a reset, a Sparkplug wrap 255 -> 0 and a VDA 5050 headerId
jump, alarms with known acknowledge and clear times, hostile names that must come out
escaped, and a few thousand raw rows that must stream back byte for byte.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.api.app import make_engine
from services.api.report import ledger
from services.api.rollups import maintain
from tests.test_api_support import Keys, api_settings, auth, client, make_keys

HOUR = timedelta(hours=1)
# Whole hour three days back: the rollups and the ledger start from the first row.
BASE = datetime.fromtimestamp((int(datetime.now(UTC).timestamp()) // 3600 - 72) * 3600, UTC)
HOSTILE = '<script>alert("x")</script>'


def at(hours: float, seconds: float = 0) -> datetime:
    return BASE + timedelta(hours=hours, seconds=seconds)


def link_rows(project: str, device: str, items: list[tuple[datetime, int]]) -> list[dict[str, Any]]:
    return [
        {"ts": ts, "project_id": project, "device_id": device, "seq": seq, "rsrp": -90.5,
         "sinr": 15.25, "latency_ms": 8.5, "received_at": ts}
        for ts, seq in items
    ]  # fmt: skip


def telemetry_rows(
    project: str, device: str, items: list[tuple[datetime, int]], metrics: int = 2
) -> list[dict[str, Any]]:
    return [
        {"ts": ts, "project_id": project, "device_id": device, "seq": seq,
         "metric": f"m{m}", "value": float(m), "received_at": ts}
        for ts, seq in items for m in range(metrics)
    ]  # fmt: skip


def agv_rows(project: str, device: str, items: list[tuple[datetime, int]]) -> list[dict[str, Any]]:
    return [
        {"ts": ts, "project_id": project, "device_id": device, "seq": seq, "battery": 80.0,
         "state": "moving", "received_at": ts}
        for ts, seq in items
    ]  # fmt: skip


def seconds(hour: float, seqs: list[int]) -> list[tuple[datetime, int]]:
    """One record per second from `hour` on, with these counter values."""
    return [(at(hour, i), s) for i, s in enumerate(seqs)]


# device -> (counter, expected, received unique, repeats, lost, resets), computed by hand.
EXPECTED: dict[str, tuple[str, int, int, int, int, int]] = {
    # 1 2 3 _ _ 6 7: two lost.
    "cpe-gap": ("seq", 7, 5, 0, 2, 0),
    # 1 2 2 3: the second 2 (another ts) is a repeat, nothing lost.
    "cpe-dup": ("seq", 3, 3, 1, 0, 0),
    # 10 11 12 | restart | 0 1 _ 3: one reset, one lost after it.
    "cpe-reset": ("seq", 7, 6, 0, 1, 1),
    # 1 2 3 in hour 0, silent, 10 11 in hour 5: 4..9 lost across the silence.
    "cpe-hours": ("seq", 11, 5, 0, 6, 0),
    # VDA 5050 headerId 100 101 _ _ _ 105 106.
    "vda.agv-1": ("seq", 7, 4, 0, 3, 0),
    # native telemetry, three metric rows per record: 5 records, 1 lost (4 missing).
    "machine-1": ("seq", 6, 5, 0, 1, 0),
    # Sparkplug node n1 and its device n1.d1 share one counter: 250..255 0 1 (wrap, none
    # lost), _ 3 (2 lost), 254 after 3 is +251 (a wrap with 250 lost), then a rebirth 0
    # (reset, a text metric only), 1 2.
    "n1": ("sparkplug", 8 + 2 + 251 + 1 + 2, 13, 0, 1 + 250, 1),
}


async def _insert(url: str, table: str, rows: list[dict[str, Any]]) -> None:
    engine = make_engine(api_settings(url))
    try:
        async with engine.begin() as conn:
            cols = list(rows[0])
            await conn.execute(
                sa.text(
                    f"INSERT INTO {table} ({', '.join(cols)}) "
                    f"VALUES ({', '.join(':' + c for c in cols)})"
                ),
                rows,
            )
    finally:
        await engine.dispose()


async def _devices(url: str, rows: list[tuple[str, str, str]]) -> None:
    await _insert(
        url, "devices", [{"project_id": p, "device_id": d, "kind": k} for p, d, k in rows]
    )


async def _ledger_data(url: str) -> None:
    """Part of the hand-made sequences; `_ledger_late` adds the rest later."""
    await _devices(
        url,
        [("p1", d, "cpe") for d in ("cpe-gap", "cpe-dup", "cpe-reset", "cpe-hours")]
        + [("p1", "vda.agv-1", "agv"), ("p1", "machine-1", "machine"),
           ("p1", "n1", "spb-node"), ("p1", "n1.d1", "spb-device"),
           ("p2", "cpe-other", "cpe")],
    )  # fmt: skip
    await _insert(url, "link_kpis", [
        *link_rows("p1", "cpe-gap", seconds(0, [1, 2, 3, 6, 7])),
        *link_rows("p1", "cpe-dup", seconds(0, [1, 2, 2, 3])),
        *link_rows("p1", "cpe-reset", seconds(0, [10, 11, 12, 0, 1, 3])),
        *link_rows("p1", "cpe-hours", seconds(0, [1, 2, 3])),
        *link_rows("p2", "cpe-other", seconds(0, [1, 5])),
    ])  # fmt: skip
    await _insert(url, "agv_status", agv_rows("p1", "vda.agv-1", seconds(0, [100, 101, 105])))
    await _insert(
        url, "telemetry", telemetry_rows("p1", "machine-1", seconds(1, [1, 2, 3, 5, 6]), 3)
    )
    # Sparkplug: node messages and device messages interleave on the node's counter.
    node = [(at(2, 0), 250), (at(2, 2), 252), (at(2, 4), 254), (at(2, 6), 0)]
    dev = [(at(2, 1), 251), (at(2, 3), 253), (at(2, 5), 255), (at(2, 7), 1)]
    await _insert(url, "telemetry", telemetry_rows("p1", "n1", node))
    await _insert(url, "telemetry", telemetry_rows("p1", "n1.d1", dev))


async def _ledger_late(url: str) -> None:
    """Rows of later hours, written after a first ledger pass: the ledger links them on."""
    await _insert(url, "link_kpis", link_rows("p1", "cpe-hours", seconds(5, [10, 11])))
    await _insert(url, "agv_status", agv_rows("p1", "vda.agv-1", seconds(5, [106])))
    await _insert(url, "telemetry", telemetry_rows("p1", "n1.d1", [(at(3, 0), 3)]))
    await _insert(url, "telemetry", telemetry_rows("p1", "n1", [(at(3, 1), 254)]))
    # A text metric only (telemetry_text): it counts like any other record of the node.
    await _insert(url, "telemetry_text", [
        {"ts": at(3, 2), "project_id": "p1", "device_id": "n1", "seq": 0, "metric": "mode",
         "value": "auto", "received_at": at(3, 2)}])  # fmt: skip
    await _insert(url, "telemetry", telemetry_rows("p1", "n1.d1", seconds(3.5, [1, 2])))


@dataclass
class Env:
    url: str
    c: httpx.AsyncClient
    k: Keys
    alarm_ids: list[int]


async def _catch_up(url: str, now: datetime) -> None:
    engine = make_engine(api_settings(url))
    try:
        await maintain.catch_up(engine, now=now)
        await ledger.catch_up(engine, now=now)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    await _ledger_data(url)
    # First pass sees hours 0-2 only; the late rows come after it.
    await _catch_up(url, at(3))
    await _ledger_late(url)
    await _catch_up(url, datetime.now(UTC))
    await _insert(url, "projects", [
        {"id": "p1", "name": f"Line {HOSTILE}", "targets": '{"defect_rate_max": 0.05}'},
        {"id": "p2", "name": "Other", "targets": "{}"},
    ])  # fmt: skip
    ids = await _alarms(url)
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield Env(url, c, k, ids)


async def _ledger_of(url: str, start: datetime, end: datetime) -> dict[str, ledger.DeviceLedger]:
    engine = make_engine(api_settings(url))
    try:
        async with engine.connect() as conn:
            return {d.device_id: d for d in await ledger.project_ledger(conn, "p1", start, end)}
    finally:
        await engine.dispose()


async def test_completeness_of_hand_made_sequences(env: Env) -> None:
    got = await _ledger_of(env.url, at(0), at(6))
    assert set(got) == set(EXPECTED)
    for device, (counter, expected, received, repeats, lost, resets) in EXPECTED.items():
        d = got[device]
        assert (d.counter, d.expected, d.received - d.repeats, d.repeats, d.lost, d.resets) == (
            counter, expected, received, repeats, lost, resets,
        ), device  # fmt: skip


async def test_ledger_rows_are_per_hour_and_link_across_hours(env: Env) -> None:
    # Hour 0 alone: cpe-hours has its first three records; hour 5 alone: the silence's six
    # lost records and the two received, counted where the stream resumed.
    first = await _ledger_of(env.url, at(0), at(1))
    assert (first["cpe-hours"].expected, first["cpe-hours"].lost) == (3, 0)
    later = await _ledger_of(env.url, at(5), at(6))
    assert (later["cpe-hours"].expected, later["cpe-hours"].lost) == (8, 6)
    assert (later["vda.agv-1"].expected, later["vda.agv-1"].lost) == (1, 0)
    # A range reports the whole minutes it touches: cpe-gap's records are in minute 0.
    inside = await _ledger_of(env.url, at(0, 30), at(0, 31))
    assert (inside["cpe-gap"].expected, inside["cpe-gap"].lost) == (7, 2)
    assert "cpe-gap" not in await _ledger_of(env.url, at(0, 60), at(0, 1200))
    # Edges from minutes, the middle from hours: the same sums as whole hours.
    mixed = await _ledger_of(env.url, at(0, 30), at(5, 30))
    assert mixed == await _ledger_of(env.url, at(0), at(6))
    # Minute by minute, the expectations add up to the whole (nothing counted twice).
    parts = [await _ledger_of(env.url, at(0, 60 * m), at(0, 60 * (m + 1))) for m in range(3)]
    assert sum(p["n1"].expected for p in parts if "n1" in p) == 0
    by_minute = [await _ledger_of(env.url, at(3, 60 * m), at(3, 60 * (m + 1))) for m in range(31)]
    assert sum(p["n1"].expected for p in by_minute if "n1" in p) == 2 + 251 + 1 + 2
    # Another project's devices are not in p1's ledger.
    assert "cpe-other" not in first


async def test_ledger_is_idempotent(env: Env) -> None:
    before = await _ledger_of(env.url, at(0), at(6))
    engine = make_engine(api_settings(env.url))
    try:
        await maintain.rewind(engine, at(0))
        await ledger.catch_up(engine)
        await ledger.catch_up(engine)
    finally:
        await engine.dispose()
    assert await _ledger_of(env.url, at(0), at(6)) == before


async def _alarms(url: str) -> list[int]:
    """Alarms opened in hour 1 with hand-picked acknowledge and clear delays (seconds)."""
    from tests.test_api_support import insert_alarms

    rows = [
        # rule, severity, ack after, clear after
        ("defect_rate", "major", 60, 300),
        ("defect_rate", "major", 180, None),
        ("latency", "critical", None, 90),
        (HOSTILE, "minor", 30, 30),
    ]
    out = []
    for i, (rule, sev, ack, clr) in enumerate(rows):
        opened = at(1, 100 * i)
        state = "cleared" if clr is not None else "acknowledged"
        row: dict[str, Any] = {"project_id": "p1", "device_id": "cpe-gap", "rule": rule,
                               "severity": sev, "opened_at": opened, "state": state}  # fmt: skip
        if ack is not None:
            row["acknowledged_at"] = opened + timedelta(seconds=ack)
        if clr is not None:
            row["cleared_at"] = opened + timedelta(seconds=clr)
        out += await insert_alarms(url, [row])
    # Outside the range of the report below (opened in hour 9): not counted.
    out += await insert_alarms(url, [{"project_id": "p1", "device_id": "cpe-gap",
                                      "rule": "late", "severity": "major",
                                      "opened_at": at(9)}])  # fmt: skip
    return out


def _q(**extra: str) -> dict[str, str]:
    return {"start": at(0).isoformat(), "end": at(6).isoformat(), **extra}


async def test_alarm_counts_and_mean_times(env: Env) -> None:
    r = await env.c.get("/api/v1/projects/p1/report", params=_q(format="csv"),
                        headers=auth(env.k.read_p1))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["section", "subject", "measure", "value"]
    cell = {(s, subj, m): v for s, subj, m, v in rows[1:]}
    # major: two opened, both acknowledged (60 s, 180 s -> 120 s), one cleared (300 s).
    assert cell[("alarms_by_severity", "major", "opened")] == "2"
    assert float(cell[("alarms_by_severity", "major", "mtta_s")]) == pytest.approx(120)
    assert float(cell[("alarms_by_severity", "major", "mttc_s")]) == pytest.approx(300)
    # critical: never acknowledged (no MTTA), cleared after 90 s.
    assert cell[("alarms_by_severity", "critical", "mtta_s")] == ""
    assert float(cell[("alarms_by_severity", "critical", "mttc_s")]) == pytest.approx(90)
    # all four: MTTA over the three acknowledged (60+180+30)/3, MTTC over three cleared.
    assert cell[("alarms_by_severity", "total", "opened")] == "4"
    assert float(cell[("alarms_by_severity", "total", "mtta_s")]) == pytest.approx(90)
    assert float(cell[("alarms_by_severity", "total", "mttc_s")]) == pytest.approx(140)
    assert cell[("alarms_by_rule", "major/defect_rate", "acknowledged")] == "2"
    # The loss ledger totals and one device, as in the hand computation.
    assert cell[("completeness", "cpe-gap", "lost")] == "2"
    assert cell[("completeness", "n1", "counter")] == "sparkplug"
    assert int(cell[("completeness", "", "lost")]) == sum(v[4] for v in EXPECTED.values())
    # Sections this installation does not have are said to be absent, not an error.
    assert cell[("oee", "", "available")] in ("true", "false")
    assert cell[("kpis", "defect_rate", "target_max")] == "0.05"


async def test_html_report_escapes_hostile_names(env: Env) -> None:
    engine = make_engine(api_settings(env.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "UPDATE rollup_ledger_1h SET device_id = :d WHERE device_id = 'cpe-dup'"),
                {"d": HOSTILE})  # fmt: skip
    finally:
        await engine.dispose()
    try:
        for lang, word in (("en", "Data completeness"), ("zh", "次要")):
            r = await env.c.get("/api/v1/projects/p1/report", params=_q(lang=lang),
                                headers=auth(env.k.read_p1))  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/html")
            page = r.text
            assert word in page
            assert "<script" not in page.lower()
            # project name, rule name and device id: each shown, escaped
            assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 3
            assert "@media print" in page
            # The page itself may load or run nothing but its own stylesheet.
            csp = r.headers["content-security-policy"]
            assert csp.startswith("default-src 'none'; style-src 'sha256-")
    finally:
        engine = make_engine(api_settings(env.url))
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(
                    "UPDATE rollup_ledger_1h SET device_id = 'cpe-dup' WHERE device_id = :d"),
                    {"d": HOSTILE})  # fmt: skip
        finally:
            await engine.dispose()


async def test_report_csv_defuses_formulas(env: Env) -> None:
    engine = make_engine(api_settings(env.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE projects SET city = '=HYPERLINK(1)' "
                                       "WHERE id = 'p1'"))  # fmt: skip
        r = await env.c.get("/api/v1/projects/p1/report", params=_q(format="csv"),
                            headers=auth(env.k.read_p1))  # fmt: skip
        assert "'=HYPERLINK(1)" in r.text
        assert ",=HYPERLINK" not in r.text
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE projects SET city = NULL WHERE id = 'p1'"))
        await engine.dispose()


async def test_report_scope(env: Env) -> None:
    path = "/api/v1/projects/p1/report"
    assert (await env.c.get(path, params=_q())).status_code == 401
    assert (await env.c.get(path, params=_q(), headers=auth(env.k.read_p2))).status_code == 404
    r = await env.c.get(path, params=_q(format="pdf"), headers=auth(env.k.read_p1))
    assert r.status_code == 422
    r = await env.c.get(path, params=_q(lang="fr"), headers=auth(env.k.read_p1))
    assert r.status_code == 422


# ------------------------------------------------------------------------------ exports

EXPORT_ROWS = 3000


def _pg_double(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


def _pg_ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")


@pytest.fixture(scope="module")
async def export_env(
    new_database: Callable[..., str],
) -> tuple[str, Keys, list[dict[str, Any]]]:
    url = new_database()
    await _devices(url, [("p1", "cpe-x", "cpe"), ("p1", "cpe-y", "cpe"), ("p2", "cpe-z", "cpe")])
    rows = []
    for i in range(EXPORT_ROWS):
        ts = at(0, i * 2)
        rows.append({"ts": ts, "project_id": "p1", "device_id": "cpe-x" if i % 3 else "cpe-y",
                     "seq": i, "rsrp": -90.25 - i % 7, "sinr": 12.5, "latency_ms": 1 + i % 11,
                     "rsrq": None if i % 5 else -10.5, "jitter_ms": None, "loss_pct": None,
                     "ul_mbps": None, "dl_mbps": None,
                     "cell_id": "460-00-1" if i % 2 else None, "slice": None,
                     "received_at": ts + timedelta(seconds=1)})  # fmt: skip
    await _insert(url, "link_kpis", rows)
    await _insert(url, "link_kpis", link_rows("p2", "cpe-z", seconds(0, [1, 2])))
    await _catch_up(url, datetime.now(UTC))
    return url, await make_keys(url), rows


def _expected_csv(rows: list[dict[str, Any]]) -> str:
    from services.core.streams import STREAM_DEFS

    names = STREAM_DEFS["link"].column_names
    lines = [",".join(names)]
    for r in sorted(rows, key=lambda r: (r["ts"], r["device_id"], r["seq"])):
        cells = []
        for n in names:
            v = r[n]
            if v is None:
                cells.append("")
            elif isinstance(v, datetime):
                cells.append(_pg_ts(v))
            elif isinstance(v, float | int) and n != "seq":
                cells.append(_pg_double(float(v)))
            else:
                cells.append(str(v))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


async def test_export_streams_exact_rows(
    export_env: tuple[str, Keys, list[dict[str, Any]]],
) -> None:
    url, k, rows = export_env
    params = {"start": at(0).isoformat(), "end": at(3).isoformat()}
    async with client(api_settings(url)) as (_, c):
        async with c.stream("GET", "/api/v1/projects/p1/export/link.csv", params=params,
                            headers=auth(k.read_p1)) as r:  # fmt: skip
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/csv")
            assert r.headers["x-rows"] == str(EXPORT_ROWS)
            chunks = [chunk async for chunk in r.aiter_bytes()]
        body = b"".join(chunks).decode()
        assert body == _expected_csv(rows)
        # One device only.
        r = await c.get("/api/v1/projects/p1/export/link.csv",
                        params={**params, "device": "cpe-y"}, headers=auth(k.read_p1))  # fmt: skip
        assert r.text == _expected_csv([x for x in rows if x["device_id"] == "cpe-y"])
        # Series as CSV: the series route's points, one line each.
        r = await c.get("/api/v1/projects/p1/export/series.csv",
                        params={**params, "stream": "link", "field": "latency_ms",
                                "bucket": 3600}, headers=auth(k.read_p1))  # fmt: skip
        assert r.status_code == 200, r.text
        lines = list(csv.DictReader(io.StringIO(r.text)))
        assert sum(int(x["count"]) for x in lines) == EXPORT_ROWS
        assert set(lines[0]) >= {"t", "count", "avg", "p95"}


async def test_export_bounds_and_scope(
    export_env: tuple[str, Keys, list[dict[str, Any]]],
) -> None:
    url, k, _ = export_env
    params = {"start": at(0).isoformat(), "end": at(3).isoformat()}
    path = "/api/v1/projects/p1/export/link.csv"
    async with client(api_settings(url, export_max_rows=EXPORT_ROWS - 1)) as (_, c):
        r = await c.get(path, params=params, headers=auth(k.read_p1))
        assert r.status_code == 413
        assert f"{EXPORT_ROWS:,} rows" in r.json()["error"]["message"]
        # One device's rows fit under the cap.
        r = await c.get(path, params={**params, "device": "cpe-y"}, headers=auth(k.read_p1))
        assert r.status_code == 200
        assert r.text.count("\n") == EXPORT_ROWS // 3 + 1
    async with client(api_settings(url, max_range_days=1)) as (_, c):
        wide = {"start": at(0).isoformat(), "end": at(49).isoformat()}
        r = await c.get(path, params=wide, headers=auth(k.read_p1))
        assert r.status_code == 422
        assert "at most 1 days" in r.json()["error"]["message"]
        assert (await c.get(path, params=params)).status_code == 401
        r = await c.get(path, params=params, headers=auth(k.read_p2))
        assert r.status_code == 404
        r = await c.get(path, params={**params, "device": "cpe-z"}, headers=auth(k.read_p1))
        assert r.status_code == 404
        r = await c.get("/api/v1/projects/p1/export/alarms.csv", params=params,
                        headers=auth(k.read_p1))  # fmt: skip
        assert r.status_code == 422
        # p2's own key sees only p2's rows.
        r = await c.get("/api/v1/projects/p2/export/link.csv", params=params,
                        headers=auth(k.read_p2))  # fmt: skip
        assert r.status_code == 200
        assert "cpe-x" not in r.text
        assert r.text.count("cpe-z") == 2


async def test_the_api_keeps_the_ledger_current(new_database: Callable[..., str]) -> None:
    """The API's rollup loop maintains the ledger: records written while it runs are
    counted without anyone calling the maintainer."""
    import asyncio

    url = new_database()
    await _devices(url, [("p1", "cpe-live", "cpe")])
    now = datetime.now(UTC)
    async with client(api_settings(url, rollup_interval_s=0.2)):
        await _insert(url, "link_kpis", link_rows("p1", "cpe-live", [
            (now - timedelta(seconds=30 - i), s) for i, s in enumerate([1, 2, 5, 6])
        ]))  # fmt: skip
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            got = await _ledger_of(url, now - HOUR, now + HOUR)
            if "cpe-live" in got and got["cpe-live"].received == 4:
                break
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.2)
    assert (got["cpe-live"].expected, got["cpe-live"].lost) == (6, 2)


async def test_retention_waits_for_the_ledger(env: Env) -> None:
    """Raw rows are not dropped before the ledger has counted them."""
    from services.api.retention import maintain as retention
    from services.api.rollups.specs import SPECS

    rollups = at(50)
    marks = {(name, res): rollups for name in SPECS for res in ("1m", "1h")}
    engine = make_engine(api_settings(env.url))
    try:
        async with engine.connect() as conn:
            free, _ = await retention.safe_before(conn, "link_kpis", marks)
            lagging = {**marks, (ledger.SPEC, ledger.RESOLUTION): at(10)}
            held, why = await retention.safe_before(conn, "link_kpis", lagging)
    finally:
        await engine.dispose()
    assert free is not None
    assert held is not None
    assert held == free - (rollups - at(10))
    assert why == "1m rollup watermark"
