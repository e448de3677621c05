"""OEE (ISO 22400-2) against hand-computed figures on a few minutes of machine states, in
the real database: once from raw rows (nothing maintained yet), once from the maintained
five-minute tables, which must agree to the second.

The scenario (times UTC on Monday 2026-11-23; the project's zone is Asia/Shanghai, so its
shifts A 16:00-16:20 and B 16:20-16:40 local are 08:00-08:20 and 08:20-08:40 UTC):

m1 (line L1, ideal cycle 10 s by default):
  07:55 run, 08:05 down (reason 7), 08:08 run, 08:15 planned stop, 08:17 run (spans the
  A/B boundary), 08:25 down (7), 08:26 run, 08:30 run, 08:35 run, 08:40 off.
  A: POT 1200, PDOT 120, PBT 1080, run 900 (300 + 420 + 180), down 180.
  B: POT 1200, PBT 1200, run 1140 (300 + 840), down 60.
  count.produced 100 @08:00, 130 @08:10, 190 @08:19, 5 @08:21 (reset), 50 @08:30,
  110 @08:39 -> A 30 + 60 = 90, B 5 + 45 + 60 = 110.
  count.good 95, 124, 182, 5, 48, 105 -> A 29 + 58 = 87, B 5 + 43 + 57 = 105.
m2 (no line, ideal cycle 20 s per machine):
  08:00 run, 08:05 run, then silent until 08:30 idle, 08:35 idle. The 08:05 sample holds
  10 minutes: A run 900, unknown 300; B unknown 600, idle 600.
  count.produced / count.good 0 @08:00, 40 @08:14 -> A 40 / 40.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import make_engine
from services.api.rollups import machine, maintain
from tests.test_api_support import Keys, api_settings, auth, client, make_keys

DAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday


def at(hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return DAY + timedelta(hours=int(h), minutes=int(m))


M1_STATES = [
    ("07:55", 1, None), ("08:05", 3, 7), ("08:08", 1, None), ("08:15", 4, None),
    ("08:17", 1, None), ("08:25", 3, 7), ("08:26", 1, None), ("08:30", 1, None),
    ("08:35", 1, None), ("08:40", 0, None),
]  # fmt: skip
M1_PRODUCED = [("08:00", 100), ("08:10", 130), ("08:19", 190), ("08:21", 5), ("08:30", 50),
               ("08:39", 110)]  # fmt: skip
M1_GOOD = [("08:00", 95), ("08:10", 124), ("08:19", 182), ("08:21", 5), ("08:30", 48),
           ("08:39", 105)]  # fmt: skip
M2_STATES = [("08:00", 1, None), ("08:05", 1, None), ("08:30", 2, None), ("08:35", 2, None)]
M2_COUNTS = [("08:00", 0), ("08:14", 40)]

SETTINGS = {
    "timezone": "Asia/Shanghai",
    "shifts": [
        {"name": "A", "start": "16:00", "end": "16:20", "days": [1]},
        {"name": "B", "start": "16:20", "end": "16:40", "days": [1]},
    ],
    "ideal_cycle_s": {"default": 10, "machines": {"m2": 20}},
    "reasons": {"7": "Tool break"},
}
RANGE = {"start": "2026-11-23T08:00:00Z", "end": "2026-11-23T08:40:00Z"}


def _telemetry_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(project: str, device: str, t: str, metric: str, value: float) -> None:
        rows.append(
            {"ts": at(t), "p": project, "d": device, "seq": len(rows), "m": metric, "v": value}
        )

    for project, device, states in (("p1", "m1", M1_STATES), ("p1", "m2", M2_STATES),
                                    ("p2", "m3", M2_STATES)):  # fmt: skip
        for t, state, reason in states:
            add(project, device, t, "state", state)
            if reason is not None:
                add(project, device, t, "reason", reason)
            add(project, device, t, "temperature_c", 40.0)  # other metrics are ignored
    for t, v in M1_PRODUCED:
        add("p1", "m1", t, "count.produced", v)
    for t, v in M1_GOOD:
        add("p1", "m1", t, "count.good", v)
    for device in ("m2", "m3"):
        project = "p1" if device == "m2" else "p2"
        for t, v in M2_COUNTS:
            add(project, device, t, "count.produced", v)
            add(project, device, t, "count.good", v)
    return rows


@pytest.fixture(scope="module")
async def env(
    new_database: Callable[..., str],
) -> AsyncIterator[tuple[AsyncEngine, httpx.AsyncClient, Keys]]:
    url = new_database()
    engine = make_engine(api_settings(url))
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO projects (id, name) VALUES ('p1', 'Plant 1'), ('p2', 'Plant 2')")
        )
        await conn.execute(
            sa.text(
                "INSERT INTO devices (project_id, device_id, kind, metadata) VALUES "
                "('p1', 'm1', 'machine', '{\"line\": \"L1\"}'), ('p1', 'm2', 'machine', '{}'), "
                "('p2', 'm3', 'machine', '{}')"
            )
        )
        await conn.execute(
            sa.text(
                "INSERT INTO telemetry (ts, project_id, device_id, seq, metric, value, "
                "received_at) VALUES (:ts, :p, :d, :seq, :m, :v, :ts)"
            ),
            _telemetry_rows(),
        )
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield engine, c, k
    await engine.dispose()


async def _put_settings(c: httpx.AsyncClient, k: Keys) -> None:
    r = await c.put("/api/v1/projects/p1/oee/settings", json=SETTINGS, headers=auth(k.admin))
    assert r.status_code == 200, r.text


def _close(got: float | None, want: float) -> None:
    assert got is not None, want
    assert got == pytest.approx(want, abs=1e-9), (got, want)


def _check_machines(items: list[dict[str, Any]]) -> None:
    m1, m2 = items
    assert (m1["key"], m1["line"], m2["key"], m2["line"]) == ("m1", "L1", "m2", None)
    assert m1["planned_shift_s"] == 2400
    assert m1["planned_downtime_s"] == 120
    assert m1["planned_busy_s"] == 2280
    assert m1["run_s"] == 2040
    assert m1["down_s"] == 240
    assert m1["unknown_s"] == 0
    assert m1["produced"] == 200
    assert m1["good"] == 192
    _close(m1["availability"], 2040 / 2280)
    _close(m1["effectiveness"], 10 * 200 / 2040)
    _close(m1["quality"], 192 / 200)
    _close(m1["oee"], 2040 / 2280 * 10 * 200 / 2040 * 192 / 200)
    assert m2["run_s"] == 900
    assert m2["idle_s"] == 600
    assert m2["unknown_s"] == 900
    assert m2["produced"] == 40
    assert m2["good"] == 40
    assert m2["ideal_cycle_s"] == 20
    _close(m2["availability"], 900 / 2400)
    _close(m2["effectiveness"], 20 * 40 / 900)
    _close(m2["oee"], 900 / 2400 * 20 * 40 / 900 * 1.0)


def _check_project(p: dict[str, Any]) -> None:
    assert p["key"] == "p1"
    assert p["machines"] == 2
    assert p["planned_busy_s"] == 4680
    assert p["run_s"] == 2940
    _close(p["availability"], 2940 / 4680)
    _close(p["effectiveness"], (10 * 200 + 20 * 40) / 2940)
    _close(p["quality"], 232 / 240)


async def _all(c: httpx.AsyncClient, k: Keys) -> dict[str, Any]:
    h = auth(k.read_p1)
    out = {}
    for by in ("machine", "line", "project"):
        r = await c.get("/api/v1/projects/p1/oee", params={**RANGE, "by": by}, headers=h)
        assert r.status_code == 200, r.text
        out[by] = r.json()
    for name in ("pareto", "trend"):
        r = await c.get(f"/api/v1/projects/p1/oee/{name}", params=RANGE, headers=h)
        assert r.status_code == 200, r.text
        out[name] = r.json()
    return out


async def test_oee_by_machine_line_project_from_raw_then_maintained(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    engine, c, k = env
    await _put_settings(c, k)
    async with engine.connect() as conn:
        assert await machine.watermark(conn) is None
    live = await _all(c, k)
    _check_machines(live["machine"]["items"])
    _check_project(live["project"]["items"][0])
    lines = {i["key"]: i for i in live["line"]["items"]}
    assert set(lines) == {"L1", None}
    assert lines["L1"]["run_s"] == 2040
    assert live["project"]["planned"] is True
    assert live["project"]["timezone"] == "Asia/Shanghai"

    await maintain.catch_up(engine)
    async with engine.connect() as conn:
        wm = await machine.watermark(conn)
        stored = (await conn.execute(sa.text("SELECT count(*) FROM oee_states_5m"))).scalar()
    assert wm is not None
    assert wm > at("08:40")
    assert stored
    assert await _all(c, k) == live


async def test_whole_hours_come_from_the_hourly_table(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    """One shift 07:00-09:00 UTC: its two whole hours are read from `oee_states_1h`.

    m1: run 600 (07:55-08:05) + 420 + 480 + 840 = 2340, down 240, planned 120 and 600
    (the 08:40 "off" holds ten minutes), then nothing known: unknown = 6480 - 2580 = 3900.
    """
    engine, c, k = env
    await maintain.catch_up(engine)
    async with engine.connect() as conn:
        hours = (
            await conn.execute(
                sa.text("SELECT count(DISTINCT bucket) FROM oee_states_1h WHERE device_id = 'm1'")
            )
        ).scalar()
    assert hours == 2  # 07:00 and 08:00
    two_hours = {**SETTINGS, "shifts": [{"name": "D", "start": "15:00", "end": "17:00"}]}
    r = await c.put("/api/v1/projects/p1/oee/settings", json=two_hours, headers=auth(k.admin))
    assert r.status_code == 200, r.text
    r = await c.get(
        "/api/v1/projects/p1/oee",
        params={"start": "2026-11-23T07:00:00Z", "end": "2026-11-23T09:00:00Z", "by": "machine"},
        headers=auth(k.read_p1),
    )
    assert r.status_code == 200, r.text
    m1 = r.json()["items"][0]
    want = {
        **{"planned_shift_s": 7200, "planned_downtime_s": 720, "planned_busy_s": 6480},
        **{"run_s": 2340, "down_s": 240, "unknown_s": 3900, "produced": 200, "good": 192},
    }
    assert {key: m1[key] for key in want} == want
    _close(m1["availability"], 2340 / 6480)

    # Two one-hour shifts with the busy hour 08:00-09:00 between them: its hourly rows lie
    # inside the range read and must count for neither. m1 runs 07:55-08:00, then nothing
    # is known in 09:00-10:00 (the 08:40 "off" held until 08:50).
    apart = {
        **SETTINGS,
        "shifts": [
            {"name": "E", "start": "15:00", "end": "16:00"},
            {"name": "F", "start": "17:00", "end": "18:00"},
        ],
    }
    r = await c.put("/api/v1/projects/p1/oee/settings", json=apart, headers=auth(k.admin))
    assert r.status_code == 200, r.text
    span = {"start": "2026-11-23T07:00:00Z", "end": "2026-11-23T10:00:00Z"}
    r = await c.get(
        "/api/v1/projects/p1/oee", params={**span, "by": "machine"}, headers=auth(k.read_p1)
    )
    m1 = r.json()["items"][0]
    want = {"planned_shift_s": 7200, "run_s": 300, "down_s": 0, "unknown_s": 6900, "produced": 0}
    assert {key: m1[key] for key in want} == want
    r = await c.get("/api/v1/projects/p1/oee/trend", params=span, headers=auth(k.read_p1))
    e, f = r.json()["items"]
    # m2 sent nothing inside these shifts: it is not among the machines of this range.
    assert (e["shift"], e["run_s"], e["planned_shift_s"]) == ("E", 300, 3600)
    assert (f["shift"], f["run_s"], f["unknown_s"]) == ("F", 0, 3600)


async def test_pareto_and_trend(env: tuple[AsyncEngine, httpx.AsyncClient, Keys]) -> None:
    _, c, k = env
    await _put_settings(c, k)
    got = await _all(c, k)
    pareto = got["pareto"]
    assert pareto["total_seconds"] == 240
    assert pareto["items"] == [
        {
            "reason": 7,
            "name": "Tool break",
            "seconds": 240.0,
            "count": 2,
            "share": 1.0,
            "cumulative_share": 1.0,
        }
    ]
    a, b = got["trend"]["items"]
    assert (a["shift"], a["date"], b["shift"]) == ("A", "2026-11-23", "B")
    assert a["shift_start"].startswith("2026-11-23T08:00:00")
    assert a["planned_busy_s"] == 2280
    assert a["run_s"] == 1800
    _close(a["availability"], 1800 / 2280)
    _close(a["effectiveness"], (10 * 90 + 20 * 40) / 1800)
    _close(a["quality"], (87 + 40) / (90 + 40))
    assert b["planned_busy_s"] == 2400
    assert b["run_s"] == 1140
    _close(b["availability"], 1140 / 2400)
    _close(b["effectiveness"], 10 * 110 / 1140)
    _close(b["quality"], 105 / 110)


async def test_no_plan_gives_null_not_100(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, c, k = env
    r = await c.get("/api/v1/projects/p2/oee", params=RANGE, headers=auth(k.read_p2))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["planned"] is False
    (p,) = body["items"]
    assert p["planned_shift_s"] == 0
    assert [p[x] for x in ("availability", "effectiveness", "quality", "oee")] == [None] * 4
    r = await c.get("/api/v1/projects/p2/oee/trend", params=RANGE, headers=auth(k.read_p2))
    assert r.status_code == 200
    assert r.json()["items"] == []


async def test_a_project_scoped_key_cannot_read_or_set_another_project(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, c, k = env
    for path in ("oee", "oee/pareto", "oee/trend", "oee/settings"):
        r = await c.get(f"/api/v1/projects/p1/{path}", params=RANGE, headers=auth(k.read_p2))
        assert r.status_code == 404, (path, r.text)
    r = await c.put("/api/v1/projects/p1/oee/settings", json=SETTINGS, headers=auth(k.admin_p2))
    assert r.status_code == 404
    r = await c.put("/api/v1/projects/p1/oee/settings", json=SETTINGS, headers=auth(k.read_p1))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"shifts": [{"name": "A", "start": "8:00", "end": "16:00"}]}, "shifts.0.start"),
        ({"shifts": [{"name": "A", "start": "08:03", "end": "16:00"}]}, "shifts.0.start"),
        ({"shifts": [{"name": "A", "start": "08:00", "end": "16:00", "days": [0]}]},
         "shifts.0.days.0"),
        ({"shifts": [{"name": "A", "start": "08:00", "end": "16:00"},
                     {"name": "B", "start": "15:00", "end": "23:00"}]}, "shifts"),
        ({"shifts": [{"name": "N", "start": "22:00", "end": "06:00", "days": [7]},
                     {"name": "M", "start": "05:00", "end": "07:00", "days": [1]}]}, "shifts"),
        ({"ideal_cycle_s": {"default": -1}}, "ideal_cycle_s.default"),
        ({"reasons": {"seven": "x"}}, "reasons"),
        ({"colour": "red"}, "colour"),
    ],
)  # fmt: skip
async def test_bad_settings_are_refused_naming_the_field(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys], change: dict[str, Any], field: str
) -> None:
    _, c, k = env
    await _put_settings(c, k)
    r = await c.put(
        "/api/v1/projects/p1/oee/settings", json={**SETTINGS, **change}, headers=auth(k.admin)
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"], r.text
    r = await c.get("/api/v1/projects/p1/oee/settings", headers=auth(k.read_p1))
    assert r.json()["shifts"] == SETTINGS["shifts"]  # nothing of the refused body stored


async def test_settings_change_is_audited(
    env: tuple[AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    engine, c, k = env
    changed = {**SETTINGS, "reasons": {"7": "Tool break", "9": "No material"}}
    r = await c.put("/api/v1/projects/p1/oee/settings", json=changed, headers=auth(k.admin))
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == "admin"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT actor, project_id, after FROM audit_events "
                    "WHERE action = 'oee.settings.update' ORDER BY id DESC LIMIT 1"
                )
            )
        ).one()
    assert row.actor == "admin"
    assert row.project_id == "p1"
    assert row.after["reasons"] == {"7": "Tool break", "9": "No material"}
