"""A throwaway demonstration platform for the README screenshots, started by one command.

Private Mosquitto and PostgreSQL + TimescaleDB on free ports in a temporary directory, a
day of seeded history for three projects, the real ingest, rules and API services as
processes, and a few AGV faults published over MQTT so the alarm feeds have something to show. It
leaves nothing behind: the servers stop and the directory is removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import orjson
import paho.mqtt.publish as mqtt_publish

from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from f5gdev.seed.generate import SeedPlan, default_end, seed
from services.api.app import make_engine
from services.api.auth import keys
from services.api.rollups import maintain
from services.core import db
from services.core.db import asyncpg_dsn
from services.core.settings import load_settings

PROJECTS = (
    ("p1", "Body shop vision line", "Shenzhen", "vision inspection, AGV logistics",
     {"defect_rate_max": 0.05, "latency_p95_ms_max": 20, "utilisation_min": 0.5,
      "mean_rsrp_dbm_min": -95}),
    ("p2", "Electronics assembly", "Suzhou", "AGV logistics, 5G private network",
     {"defect_rate_max": 0.03, "latency_p95_ms_max": 15}),
    ("p3", "Port crane retrofit", "Qingdao", "machine telemetry over 5G",
     {"latency_p99_ms_max": 30}),
)  # fmt: skip
# Seeded AGVs (device i belongs to p{i % 3 + 1}), one per project and one more in p1.
FAULTY_AGVS = ("agv-0003", "agv-0015", "agv-0016", "agv-0005")


async def _prepare(url: str, mqtt_port: int) -> str:
    await seed(url, SeedPlan(3, 36, 1.0, 1440, default_end()))
    engine = make_engine(load_settings(database={"url": url}, mqtt={"port": mqtt_port}))
    try:
        await maintain.catch_up(engine)
        async with engine.begin() as conn:
            token, _ = await keys.create(conn, "shift-lead", "operate", None)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for pid, name, city, scenario, targets in PROJECTS:
            await conn.execute(
                "UPDATE projects SET name = $2, city = $3, scenario = $4, targets = $5::jsonb"
                " WHERE id = $1",
                pid, name, city, scenario, orjson.dumps(targets).decode(),
            )  # fmt: skip
        await conn.execute(
            "UPDATE devices SET online = false WHERE device_id IN"
            " (SELECT device_id FROM devices ORDER BY device_id DESC LIMIT 4)"
        )
    finally:
        await conn.close()
    return token


def _faults(mqtt_port: int) -> None:
    """An e-stop and then a flat battery on a few AGVs: the rules service raises alarms."""
    for device in FAULTY_AGVS:
        project = f"p{int(device[-4:]) % 3 + 1}"
        topic = f"f5g/v1/{project}/agv/{device}/agv"
        base = {"x": 1.0, "y": 2.0, "heading": 0.0, "speed": 0.0, "localization": 0.95}
        for seq, extra in ((1, {"state": "estop", "battery": 60.0}),
                           (2, {"state": "idle", "battery": 8.0})):  # fmt: skip
            rec = {"ts": int(time.time() * 1000), "seq": seq, **base, **extra}
            mqtt_publish.single(
                topic, orjson.dumps(rec), qos=1, hostname="127.0.0.1", port=mqtt_port
            )
        # And a message ingest must refuse: it lands in dead_letters with its reason.
        bad = {"ts": int(time.time() * 1000), "seq": 3, **base, "state": "idle", "battery": "low"}
        mqtt_publish.single(topic, orjson.dumps(bad), qos=1, hostname="127.0.0.1", port=mqtt_port)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the API exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not become ready")


@contextmanager
def demo_platform() -> Iterator[tuple[str, str]]:
    """Yields the dashboard URL and an operate key (alarm buttons show) of a fresh platform."""
    work = Path(tempfile.mkdtemp(prefix="f5g-demo-"))
    work.chmod(0o755)
    pg = Postgres(work / "postgres", port=free_port(), durable=False)
    broker = Mosquitto(work / "mosquitto", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg.start()
        broker.start()
        pg.ensure_database("demo")
        url = pg.url_for("demo")
        db.migrate(url)
        token = asyncio.run(_prepare(url, broker.port))
        port = free_port()
        env = {
            **os.environ,
            "F5G_DATABASE__URL": url,
            "F5G_MQTT__PORT": str(broker.port),
            "F5G_API__PORT": str(port),
            "F5G_API__ROLLUP_INTERVAL_S": "0",
            "F5G_RULES__METRICS_PORT": "0",
            "F5G_RULES__CLIENT_ID": f"demo-rules-{port}",
            "F5G_INGEST__METRICS_PORT": "0",
            "F5G_INGEST__CLIENT_ID": f"demo-ingest-{port}",
        }
        exe = str(Path(sys.executable).with_name("factory5g"))
        for service in ("ingest", "rules", "api"):
            procs.append(subprocess.Popen([exe, service], env=env, stdout=subprocess.DEVNULL))
        api_url = f"http://127.0.0.1:{port}"
        _wait_ready(api_url, procs[-1])
        time.sleep(2)  # the rules service subscribes
        _faults(broker.port)
        time.sleep(3)
        yield api_url, token
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(work, ignore_errors=True)
