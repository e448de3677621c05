"""Cross-stream root cause on alarms: positive and negative cases in the real database.

Devices relate through the registry: `module_of` (explicit, wins) or the same `line`. Each
case below names the alarm it expects to be marked, or why it must not be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from services.api.app import make_engine
from tests.test_api_support import Keys, api_settings, auth, client, insert_alarms, make_keys

T = datetime(2026, 11, 3, 8, tzinfo=UTC)


def at(s: float) -> datetime:
    return T + timedelta(seconds=s)


DEVICES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("p1", "station-1", "vision", {"line": "L1"}),
    ("p1", "cpe-1", "cpe", {"line": "L1"}),
    ("p1", "station-2", "vision", {"line": "L2"}),
    ("p1", "cpe-2", "cpe", {"line": "L2", "module_of": "station-9"}),
    ("p1", "cpe-3", "cpe", {"line": "L9", "module_of": "station-2"}),
    ("p1", "agv-1", "agv", {}),
    ("p1", "cpe-agv", "cpe", {"module_of": "agv-1"}),
    ("p1", "agv-2", "agv", {}),
    ("p1", "agv-3", "agv", {"line": "L3"}),
    ("p1", "station-4", "vision", {"line": "L4"}),
    ("p1", "cpe-4", "cpe", {"line": "L4"}),
    ("p1", "station-5", "vision", {"line": "L5"}),
    ("p1", "cpe-5", "cpe", {"line": "L5"}),
    ("p2", "station-x", "vision", {"line": "L1"}),
]

# name -> (project, device, rule, opened s, cleared s or None)
ALARMS: dict[str, tuple[str, str, str, float, float | None]] = {
    "cpe1_rsrp": ("p1", "cpe-1", "rsrp_low", 0, 300),
    "st1_defect": ("p1", "station-1", "defect_rate", 30, None),
    "st1_inference_late": ("p1", "station-1", "inference_p95", 600, None),
    "st1_fails": ("p1", "station-1", "consecutive_fails", 30, None),
    "cpe2_sinr": ("p1", "cpe-2", "sinr_low", 0, None),
    "st2_defect": ("p1", "station-2", "defect_rate", 10, None),
    "cpe3_latency": ("p1", "cpe-3", "latency_p99", 2000, None),
    "st2_inference": ("p1", "station-2", "inference_p95", 2050, None),
    "agv1_stalled": ("p1", "agv-1", "stalled", 20, None),
    "agv1_conn": ("p1", "agv-1", "connection_lost", 70, None),
    "cpeagv_loss": ("p1", "cpe-agv", "loss_high", 60, None),
    "agv2_conn": ("p1", "agv-2", "connection_lost", 90, None),
    "agv2_loc": ("p1", "agv-2", "localization_low", 100, None),
    "agv2_batt": ("p1", "agv-2", "battery_low", 100, None),
    "agv3_stalled": ("p1", "agv-3", "stalled", 20, None),
    "st4_defect": ("p1", "station-4", "defect_rate", 1000, None),
    "st5_defect": ("p1", "station-5", "defect_rate", 1000, None),
    "stx_defect": ("p2", "station-x", "defect_rate", 30, None),
}


@dataclass
class Env:
    c: httpx.AsyncClient
    k: Keys
    ids: dict[str, int]


async def _registry_and_links(url: str) -> None:
    engine = make_engine(api_settings(url))
    rows = []
    # cpe-4 degraded around station-4's alarm (mean RSRP -115 dBm); cpe-5 healthy.
    for device, rsrp, sinr in (("cpe-4", -115.0, 2.0), ("cpe-5", -85.0, 15.0)):
        for i in range(20):
            rows.append(
                {"ts": at(1000 - 200 + 10 * i), "d": device, "seq": i, "rsrp": rsrp, "sinr": sinr}
            )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO devices (project_id, device_id, kind, metadata, status) "
                    "VALUES (:p, :d, :k, CAST(:m AS jsonb), 'registered')"
                ),
                [{"p": p, "d": d, "k": k, "m": orjson.dumps(m).decode()} for p, d, k, m in DEVICES],
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, "
                    "latency_ms, received_at) VALUES (:ts, 'p1', :d, :seq, :rsrp, :sinr, 12, :ts)"
                ),
                rows,
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    await _registry_and_links(url)
    names = list(ALARMS)
    made = await insert_alarms(
        url,
        [
            {
                "project_id": p,
                "device_id": d,
                "rule": r,
                "opened_at": at(o),
                "state": "open" if c is None else "cleared",
                "cleared_at": None if c is None else at(c),
                "last_value": -120.0 if r == "rsrp_low" else None,
            }
            for p, d, r, o, c in ALARMS.values()
        ],
    )
    ids = dict(zip(names, made, strict=True))
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield Env(c, k, ids)


async def _causes(env: Env) -> dict[str, Any]:
    by_id = {v: n for n, v in env.ids.items()}
    out: dict[str, Any] = {}
    for project in ("p1", "p2"):
        r = await env.c.get(
            "/api/v1/alarms", params={"project": project, "limit": 100}, headers=auth(env.k.admin)
        )
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            out[by_id[item["id"]]] = item["cause"]
    assert len(out) == len(ALARMS)
    return out


async def test_vision_alarm_during_a_link_alarm_on_the_same_line(env: Env) -> None:
    cause = (await _causes(env))["st1_defect"]
    assert cause["kind"] == "network_suspected"
    assert cause["alarm_id"] == env.ids["cpe1_rsrp"]
    link = cause["evidence"]["link_alarm"]
    assert (link["device_id"], link["rule"], link["last_value"]) == ("cpe-1", "rsrp_low", -120)


async def test_explicit_module_wins_over_the_line(env: Env) -> None:
    causes = await _causes(env)
    # station-2's module is cpe-3 (module_of); cpe-2 on its line serves station-9.
    assert causes["st2_defect"] is None
    assert causes["st2_inference"]["kind"] == "network_suspected"
    assert causes["st2_inference"]["alarm_id"] == env.ids["cpe3_latency"]


async def test_agv_alarms_as_consequences_of_the_link(env: Env) -> None:
    causes = await _causes(env)
    # The module's loss alarm opened 40 s after the stall (within the slack).
    assert causes["agv1_stalled"] == {
        "kind": "link_consequence",
        "alarm_id": env.ids["cpeagv_loss"],
        "evidence": causes["agv1_stalled"]["evidence"],
    }
    assert causes["agv1_conn"]["kind"] == "link_consequence"
    assert causes["agv1_conn"]["alarm_id"] == env.ids["cpeagv_loss"]
    # The AGV's own broken connection (VDA 5050 CONNECTIONBROKEN / silence).
    assert causes["agv2_loc"]["kind"] == "link_consequence"
    assert causes["agv2_loc"]["alarm_id"] == env.ids["agv2_conn"]


async def test_link_kpis_in_the_poor_band_without_a_link_alarm(env: Env) -> None:
    cause = (await _causes(env))["st4_defect"]
    assert cause["kind"] == "network_suspected"
    assert cause["alarm_id"] is None
    kpis = cause["evidence"]["link_kpis"]
    # Rows from 800 s every 10 s; the window is 1000 - 300 .. 1000 + 60 s: all 20 rows.
    assert (kpis["device_id"], kpis["samples"], kpis["mean_rsrp_dbm"]) == ("cpe-4", 20, -115)


async def test_negative_cases_stay_unmarked(env: Env) -> None:
    causes = await _causes(env)
    for name in (
        "st1_inference_late",  # the link alarm cleared 300 s before it opened
        "st1_fails",  # not a rule the link explains
        "agv2_batt",  # not a rule the link explains
        "agv3_stalled",  # no module related, no connection alarm
        "st5_defect",  # its module's KPIs are healthy
        "stx_defect",  # another project's line of the same name
        "cpe1_rsrp",  # link alarms themselves
        "agv2_conn",  # its own connection is not its cause
    ):
        assert causes[name] is None, name


async def test_detail_carries_the_cause_and_others_do_not_see_it(env: Env) -> None:
    r = await env.c.get(f"/api/v1/alarms/{env.ids['st1_defect']}", headers=auth(env.k.read_p1))
    assert r.status_code == 200
    assert r.json()["cause"]["alarm_id"] == env.ids["cpe1_rsrp"]
    r = await env.c.get(f"/api/v1/alarms/{env.ids['st1_defect']}", headers=auth(env.k.read_p2))
    assert r.status_code == 404


async def test_registry_takes_module_of(env: Env) -> None:
    url = "/api/v1/projects/p1/devices"
    body = {"device_id": "cpe-new", "kind": "cpe", "metadata": {"module_of": "station-99"}}
    r = await env.c.post(url, json=body, headers=auth(env.k.admin))
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["module_of"] == "station-99"
    body = {"device_id": "cpe-bad", "kind": "cpe", "metadata": {"module_of": "no spaces"}}
    r = await env.c.post(url, json=body, headers=auth(env.k.admin))
    assert r.status_code == 422
    assert "module_of" in r.text
