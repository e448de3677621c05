"""The simulator's interference episode: a station's defect spike during its module's link
fault, judged by the real rules engine with the default rules, stored in the real
database, related through the registry the simulator writes, and marked "network
suspected" by the API, which is what `make run` shows on the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from services.core.contracts import Topic, decode
from services.core.settings import Settings
from services.rules.config import load_rules
from services.rules.engine import Engine, Transition
from services.simulator.devices import FiveGModule, SimDevice, pair_stations
from services.simulator.factory import build_fleet, register_modules
from tests.conftest import make_settings
from tests.test_api_support import api_settings, auth, client, insert_alarms, make_keys

FLEET = {
    "projects": 1,
    "stations": 2,
    "modules": 1,
    "agvs": 0,
    "machines": 0,
    "vda5050_agvs": 0,
    "sparkplug_lines": 0,
    "fault_probability": 0.0,
    "seed": 11,
}
T0 = 1_795_000_000.0  # device time of the first record (2026-11)
STEP = 0.5  # the simulator's default 2 Hz


def _run(fleet: list[SimDevice], steps: int, interfere_at: int) -> list[Transition]:
    engine = Engine(load_rules(None))
    module = next(d for d in fleet if isinstance(d, FiveGModule))
    out: list[Transition] = []
    for i in range(steps):
        if i == interfere_at:
            module.fault_left = 240  # what maybe_fault does when an episode starts
        t = T0 + i * STEP
        for dev in fleet:
            rec = dev.next_record(0.0)
            rec["ts"] = int(t * 1000)
            topic = Topic(dev.project, dev.kind, dev.device_id, dev.stream)
            out += engine.process(topic, decode(dev.stream, orjson.dumps(rec)), t)
    return out


def _opened(trs: list[Transition], device: str, rule: str) -> list[Transition]:
    return [
        tr for tr in trs if tr.device == device and tr.rule == rule and tr.transition == "opened"
    ]


def test_the_station_carried_by_the_module_spikes_and_the_other_does_not() -> None:
    fleet = build_fleet(Settings(simulator=FLEET))  # type: ignore[arg-type]
    assert pair_stations(fleet) == [("qd-weld-vision", "cpe-01", "st-01")]
    trs = _run(fleet, 600, interfere_at=300)
    link = _opened(trs, "cpe-01", "rsrp_low")
    spike = _opened(trs, "st-01", "defect_rate")
    assert len(link) == 1
    assert len(spike) == 1
    assert link[0].at >= T0 + 300 * STEP  # nothing before the interference
    assert spike[0].at >= T0 + 300 * STEP
    assert spike[0].at <= T0 + (300 + 240) * STEP  # within the episode
    assert _opened(trs, "st-02", "defect_rate") == []  # no module carries st-02


async def test_make_run_shows_network_suspected(new_database: Callable[..., str]) -> None:
    url = new_database()
    settings = make_settings(url, 1883, simulator=FLEET)
    fleet = build_fleet(settings)
    register_modules(settings, pair_stations(fleet))
    trs = _run(fleet, 600, interfere_at=300)
    link = _opened(trs, "cpe-01", "rsrp_low")[0]
    spike = _opened(trs, "st-01", "defect_rate")[0]
    ids = await insert_alarms(
        url,
        [
            {
                "project_id": tr.project,
                "device_id": tr.device,
                "rule": tr.rule,
                "severity": tr.severity,
                "opened_at": datetime.fromtimestamp(tr.opened_at, UTC),
                "last_value": tr.value,
            }
            for tr in (link, spike)
        ],
    )
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        r = await c.get(f"/api/v1/alarms/{ids[1]}", headers=auth(k.admin))
    assert r.status_code == 200, r.text
    cause = r.json()["cause"]
    assert cause["kind"] == "network_suspected"
    assert cause["alarm_id"] == ids[0]
    assert cause["evidence"]["link_alarm"]["device_id"] == "cpe-01"
