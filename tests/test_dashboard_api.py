"""The dashboard's server side over real TCP: the live stream shows each key only its
projects' alarms and survives malformed messages, the summary routes answer, and pages carry
security headers while the JSON API does not need them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from pydantic import TypeAdapter

from tests.test_dashboard_support import Stack, stack_fixture  # noqa: F401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events(resp: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    event = ""
    for line in resp.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, orjson.loads(line[6:])


def next_alarm(stream: Iterator[tuple[str, dict[str, object]]]) -> dict[str, object]:
    for event, data in stream:
        if event == "alarm":
            return data
    raise AssertionError("stream ended")


def alarm_message(project: str, device: str) -> bytes:
    return orjson.dumps(
        {"alarm_id": 1, "transition": "opened", "state": "open", "project": project,
         "device": device, "rule": "safety_stop", "severity": "critical"}
    )  # fmt: skip


def test_live_stream_filters_by_key_and_survives_bad_messages(stack: Stack) -> None:
    timeout = httpx.Timeout(10.0)
    with (
        httpx.stream("GET", f"{stack.url}/api/v1/live", headers=bearer(stack.keys.read_p1),
                     timeout=timeout) as s1,
        httpx.stream("GET", f"{stack.url}/api/v1/live", headers=bearer(stack.keys.read_p2),
                     timeout=timeout) as s2,
    ):  # fmt: skip
        assert s1.status_code == 200
        assert s1.headers["content-type"].startswith("text/event-stream")
        e1, e2 = events(s1), events(s2)
        assert next(e1) == ("hello", {"live": True, "tick_s": 5.0})
        assert next(e2)[0] == "hello"
        root = "f5g/v1"
        mqtt_publish.multiple(
            [
                (f"{root}/p1/alarms/agv/a-1/safety_stop", b"{not json", 1, False),
                (f"{root}/p1/alarms/agv/a-1/safety_stop", b"[1, 2]", 1, False),
                (f"{root}/p1/alarms/agv/a-1/safety_stop", alarm_message("p1", "a-1"), 1, False),
                # The topic decides the project, not a body that claims another one.
                (f"{root}/p2/alarms/agv/a-2/safety_stop", alarm_message("p1", "a-2"), 1, False),
            ],
            hostname="127.0.0.1",
            port=stack.mqtt_port,
        )
        got1 = next_alarm(e1)
        assert (got1["project"], got1["device"]) == ("p1", "a-1")
        got2 = next_alarm(e2)  # p1's alarms never reach the p2 key
        assert (got2["project"], got2["device"]) == ("p2", "a-2")


def test_device_records_reach_only_the_streams_watching_that_device(stack: Stack) -> None:
    t = httpx.Timeout(10.0)
    h = bearer(stack.keys.read_p1)
    ms = int(time.time() * 1000)
    inspection = {"ts": ms, "seq": 2, "station": "s1", "part_id": "P-2", "result": "fail",
                  "defects": [{"type": "scratch", "confidence": 0.9}], "confidence": 0.8,
                  "inference_ms": 30}  # fmt: skip
    with (
        httpx.stream("GET", f"{stack.url}/api/v1/live?project=p1&device=cam-9", headers=h,
                     timeout=t) as watching,
        httpx.stream("GET", f"{stack.url}/api/v1/live", headers=h, timeout=t) as other,
    ):  # fmt: skip
        ew, eo = events(watching), events(other)
        assert next(ew)[0] == "hello"
        assert next(eo)[0] == "hello"
        mqtt_publish.multiple(
            [
                ("f5g/v1/p1/vision/cam-9/inspection", b"{broken", 1, False),
                ("f5g/v1/p1/vision/cam-8/inspection", orjson.dumps(inspection), 1, False),
                # Records ingest dead-letters never reach a page.
                ("f5g/v1/p1/vision/cam-9/inspection", b'[{"seq": 2}, {"seq": 3}]', 1, False),
                ("f5g/v1/p1/vision/cam-9/inspection", orjson.dumps([inspection]), 1, False),
                ("f5g/v1/p1/alarms/vision/cam-1/r", alarm_message("p1", "cam-1"), 1, False),
            ],
            hostname="127.0.0.1",
            port=stack.mqtt_port,
        )
        first = next((e, d) for e, d in ew if e == "record")
        ts = TypeAdapter(datetime).dump_python(datetime.fromtimestamp(ms / 1000, UTC), mode="json")
        # As ingest stores it and the device API shows it: `passed`, `defect_count`, no `model`.
        assert first == (
            "record",
            {"project": "p1", "kind": "vision", "device": "cam-9", "stream": "inspection",
             "records": [{"ts": ts, "seq": 2, "station": "s1", "part_id": "P-2",
                          "passed": False, "defect_count": 1,
                          "defects": [{"type": "scratch", "confidence": 0.9}],
                          "confidence": 0.8, "inference_ms": 30.0, "model": None}]},
        )  # fmt: skip
        # The other stream gets the alarm and never a record.
        assert next((e, d) for e, d in eo if e != "tick")[0] == "alarm"
    r = httpx.get(f"{stack.url}/api/v1/live?device=cam-9", headers=h)
    assert r.status_code == 422


def test_live_stream_needs_a_key_and_hides_other_projects(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/api/v1/live").status_code == 401
    r = httpx.get(f"{stack.url}/api/v1/live?project=p2", headers=bearer(stack.keys.read_p1))
    assert r.status_code == 404


def test_portfolio_counts_devices_and_active_alarms(stack: Stack) -> None:
    stack.sql(
        "INSERT INTO alarms (project_id, device_id, rule, severity, state, message, opened_at,"
        " updated_at) VALUES ('p1', 'x', 'r', 'minor', 'open', '', now(), now()),"
        " ('p1', 'y', 'r', 'minor', 'cleared', '', now(), now())"
    )
    body = httpx.get(
        f"{stack.url}/api/v1/dashboard/portfolio", headers=bearer(stack.keys.read_p1)
    ).json()
    assert [i["project_id"] for i in body["items"]] == ["p1"]
    item = body["items"][0]
    rows = stack.sql(
        "SELECT count(*) FILTER (WHERE online) AS up, count(*) FILTER (WHERE NOT online) AS down"
        " FROM devices WHERE project_id = 'p1'"
    )[0]
    assert (item["devices_online"], item["devices_offline"]) == (rows["up"], rows["down"])
    assert sum(item["devices_by_kind"].values()) == rows["up"] + rows["down"]
    active = stack.sql(
        "SELECT count(*) AS n FROM alarms WHERE project_id = 'p1' AND severity = 'minor'"
        " AND state IN ('open', 'acknowledged')"
    )[0]["n"]
    assert item["active_alarms_by_severity"]["minor"] == active


def test_stations_and_dead_letters_routes(stack: Stack) -> None:
    h = bearer(stack.keys.read_p1)
    s = httpx.get(f"{stack.url}/api/v1/projects/p1/dashboard/stations?points=24", headers=h).json()
    total = sum(p["inspections"] for st in s["stations"] for p in st["points"])
    expect = stack.sql(
        "SELECT count(*) AS n FROM inspections WHERE project_id = 'p1'"
        " AND ts >= now() - interval '24 hours' - interval '1 minute'"
    )[0]["n"]
    assert 0 < total <= expect
    assert len(s["stations"][0]["points"]) <= 25
    hidden = httpx.get(f"{stack.url}/api/v1/projects/p2/dashboard/stations", headers=h)
    assert hidden.status_code == 404
    dl = httpx.get(f"{stack.url}/api/v1/projects/p2/devices/x/dead-letters", headers=h)
    assert dl.status_code == 404
    me = httpx.get(f"{stack.url}/api/v1/dashboard/me", headers=h).json()
    assert me == {"name": "reader-p1", "scope": "read", "projects": ["p1"], "can_operate": False}


@pytest.mark.parametrize("path", ["/", "/app.js", "/vendor/echarts.min.js"])
def test_pages_carry_security_headers(stack: Stack, path: str) -> None:
    r = httpx.get(stack.url + path)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_index_uses_no_inline_script(stack: Stack) -> None:
    html = httpx.get(stack.url + "/").text
    for tag in html.split("<script")[1:]:
        assert "src=" in tag.split(">")[0], "inline scripts would be blocked by the CSP"


def test_ticks_keep_coming_while_alarm_events_flow(stack: Stack) -> None:
    """Pages refresh what ingest wrote on each tick (the floor map moves its AGVs by them):
    a steady flow of alarm events must not hold the ticks back."""
    import threading

    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            mqtt_publish.single(
                "f5g/v1/p1/alarms/agv/flood-1/stalled",
                alarm_message("p1", "flood-1"),
                qos=1,
                hostname="127.0.0.1",
                port=stack.mqtt_port,
            )
            stop.wait(0.5)

    seen: list[str] = []
    publisher = threading.Thread(target=flood, daemon=True)
    with httpx.stream(
        "GET", f"{stack.url}/api/v1/live", headers=bearer(stack.keys.read_p1), timeout=20
    ) as s:
        publisher.start()
        try:
            started = time.monotonic()
            for event, _ in events(s):
                seen.append(event)
                if time.monotonic() - started > 16:
                    break
        finally:
            stop.set()
            publisher.join(10)
    assert seen.count("alarm") >= 10  # the flow was there all along
    assert seen.count("tick") >= 2, seen.count("tick")
