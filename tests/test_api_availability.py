"""5G service availability scorecard: every figure against hand-computed values.

One project, three flows, on a real migrated TimescaleDB through the real app:
- cpe-a sends at 0, 10, 20, 34, 50, 60, 200, 210 s. Deadline 10 + 5 = 15 s (defaults).
  34 - 20 = 14 s: just under, available. 50 - 34 = 16 s: just over, unavailable 49..50 (1 s).
  200 - 60 = 140 s: unavailable 75..200 (125 s). After 210: unavailable 225..300 (75 s).
  Over [0, 300): 201 s down in 3 outages, longest 125 s, availability 33 %.
- cpe-b is registered at 100 s with profile `urllc` (20 + 10 = 30 s) and never speaks:
  unavailable 130..300 of its 200 measured seconds, 15 %.
- cpe-c sends every 10 s from 0 to 290 s: 100 %, meets the 99.99 % target.
Latency: cpe-a has 4 samples at 5.5 ms and 4 at 45 ms, cpe-c 30 at 5.5 ms; percentiles
interpolate inside the histogram bucket holding the rank (services/api/rollups/histogram.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.api.app import make_engine
from services.api.rollups import maintain
from services.core.settings import ConfigError, load_settings
from tests.test_api_support import Keys, api_settings, auth, client, make_keys

T0 = datetime(2026, 11, 2, tzinfo=UTC)
P = "p1"  # the keys of make_keys see p1 (reader-p1) and p2 (reader-p2, admin-p2)
A_TIMES = (0, 10, 20, 34, 50, 60, 200, 210)
A_LATENCY = (5.5, 45, 5.5, 45, 5.5, 45, 5.5, 45)
A_RSRP = (-75, -85, -95, -110, -75, -85, -95, -110)
C_TIMES = tuple(range(0, 300, 10))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@dataclass
class Env:
    url: str
    c: httpx.AsyncClient
    k: Keys


async def _load(url: str) -> None:
    engine = make_engine(api_settings(url))
    rows: list[dict[str, Any]] = []
    for i, t in enumerate(A_TIMES):
        rows.append(_row("cpe-a", i, t, A_LATENCY[i], A_RSRP[i]))
    for i, t in enumerate(C_TIMES):
        rows.append(_row("cpe-c", i, t, 5.5, -85))
    # Another project's flow, silent in p1's range: never part of p1's scorecard.
    rows.append({**_row("cpe-x", 0, 0, 500, -120), "project_id": "p2"})
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO projects (id, name) VALUES ('p1', 'one'), ('p2', 'two')")
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO devices (project_id, device_id, kind, first_seen, last_seen, "
                    "status, profiles) VALUES (:p, :d, 'cpe', :f, :f, :s, CAST(:pr AS text[]))"
                ),
                [
                    {"p": P, "d": "cpe-a", "f": at(0), "s": "unregistered", "pr": []},
                    {"p": P, "d": "cpe-b", "f": at(100), "s": "registered", "pr": ["urllc"]},
                    {"p": P, "d": "cpe-c", "f": at(0), "s": "unregistered", "pr": []},
                    {"p": P, "d": "station-1", "f": at(0), "s": "registered", "pr": []},
                    {"p": "p2", "d": "cpe-x", "f": at(0), "s": "unregistered", "pr": []},
                ],
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, "
                    "latency_ms, received_at) VALUES (:ts, :project_id, :device_id, :seq, "
                    ":rsrp, 15, :latency_ms, :ts)"
                ),
                rows,
            )
    finally:
        await engine.dispose()


def _row(device: str, seq: int, t: float, latency: float, rsrp: float) -> dict[str, Any]:
    return {
        "ts": at(t),
        "project_id": P,
        "device_id": device,
        "seq": seq,
        "rsrp": rsrp,
        "latency_ms": latency,
    }


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    await _load(url)
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        r = await c.put(
            f"/api/v1/projects/{P}/service-availability/flows",
            json={"profile": "urllc", "transfer_interval_s": 20, "survival_time_s": 10},
            headers=auth(k.admin),
        )
        assert r.status_code == 200, r.text
        yield Env(url, c, k)


async def _card(
    env: Env, start: float, end: float, key: str | None = None, project: str = P
) -> dict[str, Any]:
    r = await env.c.get(
        f"/api/v1/projects/{project}/service-availability",
        params={"start": at(start).isoformat(), "end": at(end).isoformat()},
        headers=auth(key or env.k.read_p1),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _flows(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["device_id"]: f for f in card["devices"]}


def _check_full_range(card: dict[str, Any]) -> None:
    flows = _flows(card)
    assert sorted(flows) == ["cpe-a", "cpe-b", "cpe-c"]  # not station-1, not p2's cpe-x
    a, b, c = flows["cpe-a"], flows["cpe-b"], flows["cpe-c"]
    assert (a["unavailable_s"], a["outages"], a["longest_outage_s"]) == (201, 3, 125)
    assert a["measured_s"] == 300
    assert a["availability_pct"] == pytest.approx(33.0)
    assert (a["transfer_interval_s"], a["survival_time_s"], a["profile"]) == (10, 5, None)
    assert (b["unavailable_s"], b["outages"], b["measured_s"]) == (170, 1, 200)
    assert b["availability_pct"] == pytest.approx(15.0)
    assert (b["profile"], b["transfer_interval_s"], b["survival_time_s"]) == ("urllc", 20, 10)
    assert b["samples"] == 0
    assert b["latency_ms"]["p99"] is None
    assert b["met"] == {"availability": False, "latency_p99": None}
    assert (c["unavailable_s"], c["outages"], c["availability_pct"]) == (0, 0, 100)
    assert c["met"] == {"availability": True, "latency_p99": True}
    # Latency: 4 samples in [5, 6) ms and 4 in [40, 50) ms.
    assert a["samples"] == 8
    assert a["latency_ms"]["p50"] == pytest.approx(5 + 1 * 4 / 4)
    assert a["latency_ms"]["p95"] == pytest.approx(40 + 10 * (7.6 - 4) / 4)
    assert a["latency_ms"]["p99"] == pytest.approx(40 + 10 * (7.92 - 4) / 4)
    assert a["met"] == {"availability": False, "latency_p99": False}
    assert c["latency_ms"]["p99"] == pytest.approx(5 + 0.99 * 30 / 30)
    assert a["rsrp_bands"] == {"excellent": 0.25, "good": 0.25, "fair": 0.25, "poor": 0.25}
    assert c["rsrp_bands"] == {"excellent": 0, "good": 1, "fair": 0, "poor": 0}
    assert a["sinr_bands"] == {"excellent": 0, "good": 1, "fair": 0, "poor": 0}
    p = card["project"]
    assert (p["flows"], p["flows_meeting_target"], p["outages"]) == (3, 1, 4)
    assert (p["measured_s"], p["unavailable_s"], p["longest_outage_s"]) == (800, 371, 170)
    assert p["availability_pct"] == pytest.approx(100 * (1 - 371 / 800))
    assert p["samples"] == 38
    assert p["latency_ms"]["p50"] == pytest.approx(5 + 19 / 34)
    assert p["latency_ms"]["p99"] == pytest.approx(40 + 10 * (0.99 * 38 - 34) / 4)
    assert p["rsrp_bands"]["good"] == pytest.approx(32 / 38)
    assert p["rsrp_bands"]["poor"] == pytest.approx(2 / 38)
    assert p["met"] == {"availability": False, "latency_p99": False}
    assert card["targets"] == {"availability_pct": 99.99, "latency_p99_ms": 20}


async def test_hand_computed_from_raw_rows(env: Env) -> None:
    """Before any maintainer pass: silences and summaries come from the raw rows."""
    _check_full_range(await _card(env, 0, 300))


async def test_range_boundaries_cut_outages(env: Env) -> None:
    card = await _card(env, 100, 205)
    a = _flows(card)["cpe-a"]
    # 75..200 cut to 100..200; the last message before 205 is at 200, due again at 215.
    assert (a["measured_s"], a["unavailable_s"], a["outages"]) == (105, 100, 1)
    assert a["availability_pct"] == pytest.approx(100 * 5 / 105)
    assert a["samples"] == 1  # the message at 200 s
    b = _flows(card)["cpe-b"]  # due at 130 s, silent: 100..205 minus 100..130
    assert (b["measured_s"], b["unavailable_s"]) == (105, 75)


async def test_a_range_before_a_flow_existed_leaves_it_out(env: Env) -> None:
    card = await _card(env, 0, 90)
    assert sorted(_flows(card)) == ["cpe-a", "cpe-c"]  # cpe-b first seen at 100 s
    assert _flows(card)["cpe-a"]["unavailable_s"] == 16  # 49..50 and 75..90


async def test_same_figures_from_the_maintained_gaps_and_rollups(env: Env) -> None:
    engine = make_engine(api_settings(env.url))
    try:
        await maintain.catch_up(engine, now=at(86_400))
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT device_id, extract(epoch FROM last_ts - :t0), "
                        "extract(epoch FROM next_ts - :t0) FROM link_gaps ORDER BY 1, 2"
                    ),
                    {"t0": T0},
                )
            ).all()
            marks = await maintain.watermarks(conn)
    finally:
        await engine.dispose()
    # Only silences longer than the 15 s floor are kept: not the 14 s one.
    assert [(d, float(a), float(b)) for d, a, b in rows] == [
        ("cpe-a", 34, 50),
        ("cpe-a", 60, 200),
    ]
    assert marks[("link_gaps", "gap")] > at(300)
    assert marks[("link", "1h")] > at(300)
    _check_full_range(await _card(env, 0, 300))


async def test_project_targets_decide_met(env: Env) -> None:
    r = await env.c.patch(
        f"/api/v1/projects/{P}",
        json={"targets": {"availability_pct": 30, "latency_p99_ms": 50}},
        headers=auth(env.k.admin),
    )
    assert r.status_code == 200, r.text
    try:
        card = await _card(env, 0, 300)
        assert card["targets"] == {"availability_pct": 30, "latency_p99_ms": 50}
        a = _flows(card)["cpe-a"]
        assert a["met"] == {"availability": True, "latency_p99": True}  # 33 >= 30, 49.8 <= 50
        assert card["project"]["flows_meeting_target"] == 2  # a and c; b at 15 %
    finally:
        r = await env.c.patch(
            f"/api/v1/projects/{P}", json={"targets": {}}, headers=auth(env.k.admin)
        )
        assert r.status_code == 200


async def test_scope_other_projects_keys_see_nothing(env: Env) -> None:
    r = await env.c.get(f"/api/v1/projects/{P}/service-availability", headers=auth(env.k.read_p2))
    assert r.status_code == 404
    card = await _card(env, 0, 300, env.k.admin)
    assert "cpe-x" not in _flows(card)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"transfer_interval_s": 0, "survival_time_s": 20}, "transfer_interval_s"),
        ({"transfer_interval_s": 5, "survival_time_s": -1}, "survival_time_s"),
        ({"transfer_interval_s": 5, "survival_time_s": 5}, "survival_time_s"),  # under floor
        ({"transfer_interval_s": 10}, "survival_time_s"),
        ({"transfer_interval_s": 10, "survival_time_s": 5, "profile": ""}, "profile"),
        ({"transfer_interval_s": 10, "survival_time_s": 5, "extra": 1}, "extra"),
    ],
)
async def test_bad_flow_settings_are_422_naming_the_field(
    env: Env, body: dict[str, Any], field: str
) -> None:
    r = await env.c.put(
        f"/api/v1/projects/{P}/service-availability/flows",
        json=body,
        headers=auth(env.k.admin),
    )
    assert r.status_code == 422, r.text
    assert field in r.text


async def test_flow_settings_need_admin_and_are_audited(env: Env) -> None:
    url = f"/api/v1/projects/{P}/service-availability/flows"
    body = {"profile": "embb", "transfer_interval_s": 30, "survival_time_s": 30}
    r = await env.c.put(url, json=body, headers=auth(env.k.operate_p1))
    assert r.status_code == 403
    r = await env.c.put(url, json=body, headers=auth(env.k.admin_p2))
    assert r.status_code == 404
    r = await env.c.put(url, json=body, headers=auth(env.k.admin))
    assert r.status_code == 200, r.text
    listed = (await env.c.get(url, headers=auth(env.k.read_p1))).json()
    assert {i["profile"]: i["transfer_interval_s"] for i in listed["items"]} == {
        "embb": 30,
        "urllc": 20,
    }
    assert listed["defaults"]["transfer_interval_s"] == 10
    engine = make_engine(api_settings(env.url))
    try:
        async with engine.connect() as conn:
            acts = (
                await conn.execute(
                    sa.text(
                        "SELECT target_id, actor, after FROM audit_events "
                        "WHERE action = 'availability.flow.set' ORDER BY id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert [(a.target_id, a.actor) for a in acts] == [("p1/urllc", "admin"), ("p1/embb", "admin")]
    assert acts[-1].after == {"transfer_interval_s": 30, "survival_time_s": 30}


def test_a_default_deadline_under_the_floor_stops_the_start_naming_the_keys() -> None:
    with pytest.raises(ConfigError, match=r"F5G_AVAILABILITY.*gap_floor_s"):
        load_settings(availability={"transfer_interval_s": 5, "survival_time_s": 1})
    with pytest.raises(ConfigError, match="F5G_AVAILABILITY__TRANSFER_INTERVAL_S"):
        load_settings(availability={"transfer_interval_s": 0})


async def test_a_late_row_inside_a_kept_silence_splits_it_after_a_rewind(env: Env) -> None:
    """A row arriving after the maintainer passed its time: `rollup --since` (rewind)
    rebuilds the gaps too, and the scorecard follows. On p2's own flow cpe-y, sending at
    0, 60 and 200 s, then late at 130 s."""
    engine = make_engine(api_settings(env.url))
    insert = (
        "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, latency_ms, "
        "received_at) VALUES (:ts, 'p2', 'cpe-y', :seq, -85, 15, 5.5, :ts)"
    )

    async def p2() -> dict[str, Any]:
        await maintain.catch_up(engine, now=at(86_400))
        return _flows(await _card(env, 0, 300, env.k.admin_p2, "p2"))["cpe-y"]

    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO devices (project_id, device_id, kind, first_seen, last_seen) "
                    "VALUES ('p2', 'cpe-y', 'cpe', :t, :t)"
                ),
                {"t": at(0)},
            )
            await conn.execute(sa.text(insert), [{"ts": at(t), "seq": t} for t in (0, 60, 200)])
        await maintain.rewind(engine, at(0))  # as if they had arrived on time
        y = await p2()
        # Down 15..60, 75..200 and 215..300.
        assert (y["outages"], y["unavailable_s"], y["longest_outage_s"]) == (3, 255, 125)
        async with engine.begin() as conn:
            await conn.execute(sa.text(insert), {"ts": at(130), "seq": 130})
        assert (await p2())["unavailable_s"] == 255  # behind the maintainer: not seen yet
        await maintain.rewind(engine, at(0))
        y = await p2()
        # 60 -> 130 -> 200: down 75..130 and 145..200 instead of 75..200.
        assert (y["outages"], y["unavailable_s"], y["longest_outage_s"]) == (4, 240, 85)
    finally:
        await engine.dispose()


async def test_a_flow_first_seen_before_the_range_end_and_speaking_after_it(env: Env) -> None:
    """Registered at 0 s, first message at 250 s: over [0, 200) it is down from 15 s, once."""
    engine = make_engine(api_settings(env.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO devices (project_id, device_id, kind, first_seen, last_seen) "
                    "VALUES ('p2', 'cpe-z', 'cpe', :t, :t)"
                ),
                {"t": at(0)},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, "
                    "latency_ms, received_at) VALUES (:ts, 'p2', 'cpe-z', 1, -85, 15, 5.5, :ts)"
                ),
                {"ts": at(250)},
            )
        await maintain.rewind(engine, at(0))
        await maintain.catch_up(engine, now=at(86_400))
    finally:
        await engine.dispose()
    z = _flows(await _card(env, 0, 200, env.k.admin_p2, "p2"))["cpe-z"]
    assert (z["measured_s"], z["unavailable_s"], z["outages"]) == (200, 185, 1)
