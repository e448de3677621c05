"""The simulated AGVs drive over hall 1 through a coverage hole: their modules' RSRP and
SINR drop in the hole, and the AGVs that stall do so there."""

from __future__ import annotations

import orjson

from services.core.contracts import decode
from services.core.settings import Settings
from services.simulator.factory import build_fleet
from services.simulator.floor import EXTENT, MAP_ID, FloorAgv, FloorModule, depth


def test_agvs_cross_the_coverage_hole_where_the_link_fades_and_they_stall() -> None:
    settings = Settings(simulator={"seed": 3, "projects": 1, "fault_probability": 0.0})  # type: ignore[arg-type]
    fleet = build_fleet(settings)
    agvs = [d for d in fleet if isinstance(d, FloorAgv)]
    modules = [d for d in fleet if isinstance(d, FloorModule)]
    assert len(agvs) == settings.simulator.agvs
    # Each module publishes `link` under its AGV's own device id.
    assert sorted(m.device_id for m in modules) == sorted(a.device_id for a in agvs)
    inside: list[float] = []
    outside: list[float] = []
    stalled_at: list[float] = []
    for _ in range(600):
        for dev in fleet:
            if not isinstance(dev, FloorAgv | FloorModule):
                continue
            rec = dev.next_record(0.0)
            decode(dev.stream, orjson.dumps(rec))  # every record honours the contract
            if isinstance(dev, FloorAgv):
                assert rec["map_id"] == MAP_ID
                assert EXTENT[0] <= rec["x"] <= EXTENT[2]
                assert EXTENT[1] <= rec["y"] <= EXTENT[3]
                if rec["state"] == "moving" and rec["speed"] == 0.0:
                    stalled_at.append(depth(rec["x"], rec["y"]))
            else:
                assert dev.agv is not None
                d = depth(*dev.agv.position)
                if d > 0.5:
                    inside.append(rec["rsrp"])
                elif d == 0:
                    outside.append(rec["rsrp"])
    assert inside
    assert outside
    mean_in = sum(inside) / len(inside)
    mean_out = sum(outside) / len(outside)
    assert mean_in < -110 < -95 <= mean_out
    # Some AGVs stall, and only inside the hole.
    assert stalled_at
    assert min(stalled_at) > 0
