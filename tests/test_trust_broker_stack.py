"""The local stack's broker with its real services: nothing they publish is refused.

Mosquitto 2.0.11 closes a client's connection after refusing one of its publishes, so an
ACL grant narrower than what a service really publishes would show up as reconnect loops,
not as an error. The simulator (native, Sparkplug B and VDA 5050 devices, wills included)
and ingest (Sparkplug host STATE, rebirth commands) run against the local stack's broker
with their service accounts from `service_env`, and the broker's debug log must hold no
denied publish or subscription.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from f5gdev.devstack.stack import LocalStack
from f5gdev.devstack.stack_accounts import service_env
from services.core import db
from tests.test_ingest_helpers import wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _spawn(name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", name],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_stack_services_publish_only_within_their_grants(
    stack_tmp: Path, new_database: Callable[[], str], tmp_path: Path
) -> None:
    stack = LocalStack(stack_tmp / f"stack-{uuid.uuid4().hex[:8]}", mqtt_port=free_port())
    stack.ensure_accounts()
    local = stack.mosquitto
    broker = Mosquitto(
        local.base_dir,
        port=local.port,
        auth_dir=local.auth_dir,
        extra_config="log_type debug",  # Mosquitto logs denied packets at debug level
    )
    broker.start()
    url = new_database()
    db.migrate(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, extra in (
            ("ingest", {"F5G_INGEST__METRICS_PORT": "0"}),
            (
                "simulate",
                {
                    "F5G_SIMULATOR__PROJECTS": "1",
                    "F5G_SIMULATOR__RATE_HZ": "2",
                    "F5G_SIMULATOR__SEED": "7",
                },
            ),
        ):
            env = dict(os.environ)
            env.update(service_env(name, stack.broker_auth, None, url))
            env.update(
                {
                    "F5G_DATABASE__URL": url,
                    "F5G_MQTT__HOST": "127.0.0.1",
                    "F5G_MQTT__PORT": str(broker.port),
                    **extra,
                }
            )
            procs.append(_spawn(name, env, tmp_path / f"{name}.log"))

        seen: dict[str, int] = {"f5g": 0, "spBv1.0": 0, "uagv": 0}
        rules = stack.broker_auth.service_credentials("rules")
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            username=rules.username,
            password=rules.password,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as watcher:
            for filt in ("f5g/v1/#", "spBv1.0/#", "uagv/#"):
                await watcher.subscribe(filt, qos=0)

            async def count() -> None:
                async for msg in watcher.messages:
                    seen[msg.topic.value.split("/", 1)[0]] += 1

            counter = asyncio.ensure_future(count())

            async def every_tree_seen() -> bool:
                for p in procs:
                    assert p.poll() is None, (tmp_path / "simulate.log").read_text()[-3000:]
                return all(n >= 5 for n in seen.values())

            try:
                await wait_until(every_tree_seen, 90, 0.2)
                await asyncio.sleep(5)  # keep running: reconnect loops would show now
            finally:
                counter.cancel()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        broker.stop()
    denied = [
        line
        for line in broker.log_file.read_text(errors="replace").splitlines()
        if "Denied" in line or "not authorised" in line.lower()
    ]
    assert denied == [], "\n".join(denied[:20])
    assert all(n >= 5 for n in seen.values()), seen
