"""AGVs driving over a floor map with a 5G coverage hole, so the floor view has a dead zone.

Hall 1 is 60 x 30 m. Each AGV drives a rectangular loop around it (its own lane, a metre
or two inside its neighbour's) and reports `map_id: hall-1`. Its 5G module publishes the
`link` stream under the AGV's own device id (the "same device id" relation of the floor
heatmap, docs/plant.md). Around `HOLE` the signal fades: RSRP and SINR slide from their
typical to their degraded range the deeper the AGV is in the hole, and an AGV entering
the hole sometimes stalls there, still claiming `moving`, long enough for the `stalled`
rule. `make run` then shows the dead zone on the heatmap and the stalls inside it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Final

from services.simulator.devices import LINK_FIELDS, Agv, SimDevice, now_ms

MAP_ID: Final = "hall-1"
EXTENT: Final = (0.0, 0.0, 60.0, 30.0)  # x0, y0, x1, y1 in metres
HOLE: Final = (30.0, 25.0, 7.0)  # centre x, y and radius of the coverage hole, metres
STALL_CHANCE: Final = 0.3  # per entry into the hole
STALL_S: Final = (35.0, 60.0)  # longer than the `stalled` rule's 30 s
ZONES: Final = (
    {"name": "Assembly", "polygon": [[12, 10], [28, 10], [28, 20], [12, 20]], "colour": "#4f8cff"},
    {"name": "Warehouse", "polygon": [[34, 10], [50, 10], [50, 20], [34, 20]], "colour": "#9b7bd8"},
    {"name": "Charging", "polygon": [[0, 0], [4, 0], [4, 4], [0, 4]], "colour": "#2fbf71"},
)  # fmt: skip


def depth(x: float, y: float) -> float:
    """How deep (x, y) lies in the coverage hole: 0 outside, 1 at its centre."""
    cx, cy, r = HOLE
    return max(0.0, 1.0 - math.hypot(x - cx, y - cy) / r)


def loop_point(s: float, inset: float) -> tuple[float, float, float]:
    """(x, y, heading in degrees) at distance `s` along the loop `inset` metres inside
    the hall's 5 m aisle, counter-clockwise from its lower-left corner."""
    x0, y0, x1, y1 = EXTENT
    left, bottom, right, top = x0 + 5 + inset, y0 + 5 + inset, x1 - 5 - inset, y1 - 5 - inset
    w, h = right - left, top - bottom
    s %= 2 * (w + h)
    if s < w:
        return left + s, bottom, 0.0
    if s < w + h:
        return right, bottom + s - w, 90.0
    if s < 2 * w + h:
        return right - (s - w - h), top, 180.0
    return left, top - (s - 2 * w - h), 270.0


@dataclass
class FloorAgv(Agv):
    """An AGV of `Agv`'s states, battery and faults, driving the hall's loop."""

    distance: float = 0.0
    inset: float = 0.0
    stall_until_ms: int = 0
    in_hole: bool = False
    position: tuple[float, float] = (0.0, 0.0)

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        rec = super().next_record(fault_probability)
        now = now_ms()
        x, y, heading = loop_point(self.distance, self.inset)
        inside = depth(x, y) > 0
        if inside and not self.in_hole and self.rng.random() < STALL_CHANCE:
            self.stall_until_ms = now + int(self.rng.uniform(*STALL_S) * 1000)
        self.in_hole = inside
        if now < self.stall_until_ms and rec["state"] == "moving":
            rec["speed"] = 0.0  # claims to move, does not: the `stalled` rule's case
        elif rec["state"] == "moving":
            self.distance += rec["speed"]
        x, y, heading = loop_point(self.distance, self.inset)
        self.position = (x, y)
        rec.update(x=round(x, 3), y=round(y, 3), heading=heading, map_id=MAP_ID)
        return rec


@dataclass
class FloorModule(SimDevice):
    """The 5G module on a `FloorAgv`, publishing `link` under the AGV's device id; its
    numbers fade from `typical` to `degraded` with the depth of the AGV in the hole."""

    agv: FloorAgv | None = None
    sticky: dict[str, str] = field(default_factory=dict)

    def next_record(self, fault_probability: float) -> dict[str, Any]:
        self.seq += 1
        d = depth(*self.agv.position) if self.agv is not None else 0.0
        record: dict[str, Any] = {"ts": now_ms(), "seq": self.seq}
        for f in LINK_FIELDS:
            spec, bad = f.typical, f.degraded
            if isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[2], int):
                low, high, decimals = spec
                value = self.rng.uniform(low, high)
                if isinstance(bad, tuple) and d > 0:
                    value += (self.rng.uniform(bad[0], bad[1]) - value) * min(1.0, 2 * d)
                record[f.name] = round(value, decimals)
            elif isinstance(spec, tuple):
                if f.name not in self.sticky:
                    self.sticky[f.name] = str(self.rng.choice(spec))
                record[f.name] = self.sticky[f.name]
        return record


def floor_fleet(project: str, count: int, rng: random.Random) -> list[SimDevice]:
    """`count` AGVs on hall 1, each followed by its module (published right after it)."""
    fleet: list[SimDevice] = []
    for i in range(count):
        device = f"agv-{i + 1:02d}"
        agv = FloorAgv(
            project,
            "agv",
            device,
            "agv",
            random.Random(rng.random()),
            battery=rng.uniform(40, 100),
            distance=rng.uniform(0, 140),
            inset=(i % 3) * 1.5,
        )
        fleet += [
            agv,
            FloorModule(project, "agv", device, "link", random.Random(rng.random()), agv=agv),
        ]
    return fleet


def register_floor(conn: Any, project: str) -> None:
    """Hall 1's extent and zones for a simulated project (kept if an admin set them)."""
    import orjson
    import sqlalchemy as sa

    conn.execute(
        sa.text(
            "INSERT INTO floor_maps (project_id, map_id, x0, y0, x1, y1, zones) "
            "VALUES (:p, :m, :x0, :y0, :x1, :y1, CAST(:z AS jsonb)) "
            "ON CONFLICT (project_id, map_id) DO NOTHING"
        ),
        {
            "p": project,
            "m": MAP_ID,
            "x0": EXTENT[0],
            "y0": EXTENT[1],
            "x1": EXTENT[2],
            "y1": EXTENT[3],
            "z": orjson.dumps(list(ZONES)).decode(),
        },
    )
