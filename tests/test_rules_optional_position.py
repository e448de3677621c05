"""An AGV that reports no position is not an AGV that is lost.

VDA 5050 makes `agvPosition` optional. Ingest once stored such states with localisation 0,
and the rules service, fed by the same adapter, raised a critical `localization_low` for
an AGV that was fine. Absent is not 0: `localization_low` and `stalled` skip a state
without the field, while the rules that read what the state does carry still work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from f5gdev.devstack.servers import Mosquitto
from tests.test_rules_service import events_of, keys, publish, start_service, wait_for

T0 = datetime.now(UTC) - timedelta(minutes=2)


def _state(header: int, at: datetime, estop: str = "NONE", **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "headerId": header,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "version": "2.0.0",
        "manufacturer": "Acme",
        "serialNumber": "LG-9",
        "orderId": "o-1",
        "orderUpdateId": 0,
        "lastNodeId": "",
        "lastNodeSequenceId": 0,
        "nodeStates": [],
        "edgeStates": [],
        "driving": True,
        "operatingMode": "AUTOMATIC",
        "actionStates": [],
        "batteryState": {"batteryCharge": 80.0, "charging": False},
        "errors": [],
        "safetyState": {"eStop": estop, "fieldViolation": False},
    }
    doc.update(over)
    return orjson.dumps(doc)


async def test_states_without_position_raise_no_localization_alarm(
    database_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_path, "t-rules-nopos")
    topic = "uagv/v2/Acme/LG-9/state"
    position = {
        "x": 1.0,
        "y": 2.0,
        "theta": 0.0,
        "mapId": "hall",
        "positionInitialized": True,
        "localizationScore": 0.95,
    }
    try:
        # Localised, then 40 s of driving without reporting a position (beyond the
        # rule's `for` and the stalled rule's raise time), then an e-stop.
        states = [_state(1, T0, agvPosition=position)]
        states += [_state(2 + i, T0 + timedelta(seconds=1 + 4 * i)) for i in range(10)]
        states.append(_state(12, T0 + timedelta(seconds=45), estop="MANUAL"))
        await publish(broker.port, [(topic, s) for s in states])

        async def stopped() -> list[dict[str, Any]]:
            rows = await events_of(database_url, "vda5050", "Acme.LG-9")
            return rows if any(r["rule"] == "safety_stop" for r in rows) else []

        rows = await wait_for(stopped, 20)
        assert rows, "the e-stop state was not judged"
        by_rule: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_rule.setdefault(r["rule"], []).append(r)
        got = {rule: keys(rs) for rule, rs in by_rule.items()}
        assert got == {"safety_stop": ["opened:critical"]}
    finally:
        await svc.close()
