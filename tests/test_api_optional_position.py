"""What ingest stores for an AGV without a position, the API serves without inventing.

A VDA 5050 state may omit `agvPosition` and `velocity`; ingest stores NULL for what is
absent. These rows reach the API through the rollups, the series, the KPIs and the
device page: absent values must be left out of counts and means (not counted as 0), and
every route must answer. Rejected messages of a device, filed under it by ingest, must
show up in `/ingest/health?project=`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from f5gdev.devstack.servers import Mosquitto
from services.api.app import make_engine
from services.api.rollups import maintain
from services.core.settings import load_settings
from tests.test_api_support import api_settings, auth, client, make_keys
from tests.test_ingest_helpers import publish, running, scalar, wait_until


def _state(serial: str, header: int, at: datetime, **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "headerId": header,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "version": "2.0.0",
        "manufacturer": "Acme",
        "serialNumber": serial,
        "orderId": "",
        "orderUpdateId": 0,
        "lastNodeId": "",
        "lastNodeSequenceId": 0,
        "nodeStates": [],
        "edgeStates": [],
        "driving": False,
        "operatingMode": "AUTOMATIC",
        "actionStates": [],
        "batteryState": {"batteryCharge": 50.0 + header, "charging": False},
        "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    doc.update(over)
    return json.dumps(doc).encode()


async def test_series_kpis_and_device_page_leave_absent_positions_out(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        database={"url": url},
        mqtt={"host": "127.0.0.1", "port": broker.port},
        ingest={
            "client_id": f"ingest-{tag}",
            "share_group": f"g-{tag}",
            "metrics_port": 0,
            "vda5050_projects": {"Acme": "p1"},
        },
    )
    # Whole minutes in the past, so the minute rollups close over them.
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    pos = {"theta": 0.0, "mapId": "hall", "positionInitialized": True}
    topic = "uagv/v2/Acme/AGV-1/state"
    states = [
        _state("AGV-1", 0, t0, agvPosition={**pos, "x": 2.0, "y": 1.0, "localizationScore": 0.8}),
        _state("AGV-1", 1, t0 + timedelta(seconds=10)),
        _state("AGV-1", 2, t0 + timedelta(seconds=20)),
        _state("AGV-1", 3, t0 + timedelta(seconds=30), agvPosition={**pos, "x": 4.0, "y": 1.0}),
        _state("AGV-1", 4, t0 + timedelta(seconds=40)),  # the newest: no position
    ]
    async with running(settings):
        await publish(broker.port, [(topic, s) for s in states])
        await publish(broker.port, [(topic, b"{not json")])

        async def landed() -> bool:
            rows = int(await scalar(url, "SELECT count(*) FROM agv_status"))
            return (
                rows == len(states)
                and int(await scalar(url, "SELECT count(*) FROM dead_letters")) == 1
            )

        await wait_until(landed, 20)
    engine = make_engine(api_settings(url))
    try:
        await maintain.catch_up(engine)
    finally:
        await engine.dispose()
    k = await make_keys(url)
    device = "Acme.AGV-1"
    async with client(api_settings(url)) as (_, c):
        for width, source in ((60, "1m"), (10, "raw")):
            r = await c.get(
                "/api/v1/projects/p1/series",
                params={
                    "stream": "agv",
                    "field": "x",
                    "device": device,
                    "start": (t0 - timedelta(minutes=1)).isoformat(),
                    "end": (t0 + timedelta(minutes=2)).isoformat(),
                    "bucket": width,
                },
                headers=auth(k.read_p1),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert source in body["sources"], body["sources"]
            points = [p for p in body["points"] if p["count"]]
            # Two of five states had a position: both counted, their mean 3, not 6/5.
            assert sum(p["count"] for p in points) == 2, points
            assert min(p["min"] for p in points) == 2.0
            assert max(p["max"] for p in points) == 4.0
            if width == 60:
                assert [p["avg"] for p in points] == [3.0]

        r = await c.get(
            "/api/v1/projects/p1/kpis",
            params={
                "start": (t0 - timedelta(minutes=1)).isoformat(),
                "end": (t0 + timedelta(minutes=2)).isoformat(),
            },
            headers=auth(k.read_p1),
        )
        assert r.status_code == 200, r.text
        agv = r.json()["agv"]
        # One state reported a score (0.8), one a position without a score (1.0): mean 0.9.
        assert abs(agv["mean_localization"] - 0.9) < 1e-9, agv

        r = await c.get(f"/api/v1/projects/p1/devices/{device}", headers=auth(k.read_p1))
        assert r.status_code == 200, r.text
        last = r.json()["last"]["agv"]
        assert (last["seq"], last["x"], last["y"], last["localization"]) == (4, None, None, None)
        assert last["battery"] == 54.0

        r = await c.get("/api/v1/ingest/health", params={"project": "p1"}, headers=auth(k.read_p1))
        assert r.status_code == 200, r.text
        assert r.json()["dead_letters"]["by_reason"] == {"invalid_json": 1}
