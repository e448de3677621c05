"""The `make run` loop of issue 18, with the services as the processes `factory5g up`
starts: ingest, the API, the commander and the simulator, on a real broker and database,
with the allow-list `up` seeds (f5gdev/devstack/demo_commands.py).

An operator pauses a simulated VDA 5050 AGV and sees `completed` within 2 s; a setpoint
written to a simulated Sparkplug machine shows up in the machine's telemetry series, read
through the API as the dashboard reads it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import pytest

from f5gdev.devstack.demo_commands import demo_allowlist, seed_command_allowlist
from f5gdev.devstack.servers import Mosquitto, free_port
from services.simulator.factory import project_infos
from tests.conftest import make_settings

AGV_PROJECT, AGV = "vda5050", "SimRobotics.AGV-001"
MACHINE = "line1.machine1"
SIMULATOR = {
    "projects": 1,
    "stations": 0,
    "agvs": 0,
    "modules": 0,
    "machines": 1,
    "vda5050_agvs": 1,
    "sparkplug_lines": 1,
    "rate_hz": 2.0,
}
DEADLINE_S = 120.0  # for the stack to come up on a loaded machine; not a figure


@dataclass
class Loop:
    url: str
    api: str
    token: str
    group: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.api + path,
            method=method,
            data=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, orjson.loads(e.read() or b"null")

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()


def wait(what: str, check: Callable[[], Any], within: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def loop(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> Iterator[Loop]:
    url = new_database()
    broker = new_broker()
    token = f"f5g_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"
    settings = make_settings(url, broker.port, simulator=SIMULATOR)
    assert seed_command_allowlist(settings) == len(demo_allowlist(settings))
    api_port, ingest_port, commands_port = free_port(), free_port(), free_port()
    tag = secrets.token_hex(3)
    env = {
        **os.environ,
        "F5G_DATABASE__URL": url,
        "F5G_MQTT__PORT": str(broker.port),
        "F5G_API__PORT": str(api_port),
        "F5G_API__BOOTSTRAP_KEY": token,
        "F5G_INGEST__METRICS_PORT": str(ingest_port),
        "F5G_INGEST__CLIENT_ID": f"loop-ingest-{tag}",
        "F5G_INGEST__SHARE_GROUP": "",
        "F5G_COMMANDS__METRICS_PORT": str(commands_port),
        "F5G_COMMANDS__CLIENT_ID": f"loop-commands-{tag}",
        **{f"F5G_SIMULATOR__{k.upper()}": str(v) for k, v in SIMULATOR.items()},
    }
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        log = (tmp_path / f"{name}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", name], env=env, stdout=log, stderr=log
            )
        )

    try:
        # In `up`'s order: the simulator last, so the commander sees its births.
        for name in ("ingest", "api", "commands"):
            start(name)
        wait("the API", lambda: _healthy(f"http://127.0.0.1:{api_port}/healthz"))
        wait("the commander", lambda: _healthy(f"http://127.0.0.1:{commands_port}/healthz"))
        start("simulate")
        yield Loop(url, f"http://127.0.0.1:{api_port}", token, project_infos(1)[0].id)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def _known(loop: Loop, project: str, device: str) -> bool:
    return bool(
        loop.rows(
            "SELECT 1 FROM command_targets t JOIN devices d USING (project_id, device_id) "
            "WHERE t.project_id = %s AND t.device_id = %s AND d.online",
            project,
            device,
        )
    )


def _finished(loop: Loop, project: str, cid: str) -> dict[str, Any] | None:
    status, body = loop.call("GET", f"/api/v1/projects/{project}/commands/{cid}")
    assert status == 200, body
    if body["state"] in ("completed", "failed", "rejected", "expired"):
        return dict(body)
    return None


def test_pause_an_agv_and_write_a_machine_setpoint_under_the_local_stack(loop: Loop) -> None:
    wait("the AGV's address and the machine's birth", lambda: _known(loop, AGV_PROJECT, AGV)
         and _known(loop, loop.group, MACHINE))  # fmt: skip
    # What the dashboard offers: the names `up` allowed.
    status, allowed = loop.call("GET", f"/api/v1/projects/{AGV_PROJECT}/command-allowlist")
    assert status == 200, allowed
    assert "startPause" in str(allowed), allowed

    # Pause the AGV as the dashboard does: POST, then follow the command.
    t0 = time.monotonic()
    status, cmd = loop.call(
        "POST", f"/api/v1/projects/{AGV_PROJECT}/devices/{AGV}/commands", {"name": "startPause"}
    )
    assert status == 202, cmd
    done = wait("the pause's outcome", lambda: _finished(loop, AGV_PROJECT, cmd["id"]))
    seen_s = time.monotonic() - t0
    assert done["state"] == "completed", done
    took = datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["created_at"])
    print(f"pause: completed {took.total_seconds():.3f} s after queued, seen after {seen_s:.3f} s")
    assert took <= timedelta(seconds=2), took

    # Write the machine's setpoint; the value must come back in its telemetry series.
    value = 40.0 + secrets.randbelow(500) / 10
    since = datetime.now(UTC) - timedelta(seconds=5)
    status, cmd = loop.call(
        "POST",
        f"/api/v1/projects/{loop.group}/devices/{MACHINE}/commands",
        {"name": "write", "params": {"metrics": {"Setpoint": value}}},
    )
    assert status == 202, cmd
    done = wait("the write's outcome", lambda: _finished(loop, loop.group, cmd["id"]))
    assert done["state"] == "completed", done

    def series_shows_value() -> bool:
        end = datetime.now(UTC) + timedelta(seconds=1)
        query = urllib.parse.urlencode(
            {"stream": "telemetry", "field": "Setpoint", "device": MACHINE, "bucket": 1,
             "start": since.isoformat(), "end": end.isoformat()}
        )  # fmt: skip
        status, series = loop.call("GET", f"/api/v1/projects/{loop.group}/series?{query}")
        assert status == 200, series
        return any(p["last"] == value for p in series["points"])

    wait("the setpoint in the machine's series", series_shows_value)


def test_seeding_the_demo_allowlist_is_idempotent(new_database: Callable[..., str]) -> None:
    url = new_database()
    settings = make_settings(url, 1883, simulator=SIMULATOR)
    rows = demo_allowlist(settings)
    assert (AGV_PROJECT, "agv", "startPause") in rows
    assert (project_infos(1)[0].id, "spb-device", "write") in rows
    assert seed_command_allowlist(settings) == len(rows)
    assert seed_command_allowlist(settings) == 0
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM command_allow")
            assert cur.fetchone() == (len(rows),)
    finally:
        conn.close()
