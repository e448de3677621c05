"""The local stack's servers are real and behave as the platform needs."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from f5gdev.devstack.servers import Mosquitto, Postgres, port_open
from f5gdev.devstack.stack import INSTALL_SCRIPT


def test_install_script_is_idempotent() -> None:
    # Everything is installed by the time tests run, so a second run only checks.
    out = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "installing" not in out.stderr
    assert "TimescaleDB already installed" in out.stderr


def test_postgres_runs_timescaledb_unprivileged(pg: Postgres) -> None:
    assert pg.running()
    assert pg.psql("SHOW shared_preload_libraries") == "timescaledb"
    assert pg.psql("SHOW listen_addresses") == "127.0.0.1"
    owner = pg.data_dir.stat().st_uid
    pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    assert Path(f"/proc/{pid}").stat().st_uid == owner
    assert owner != 0


def test_start_is_idempotent_and_stop_leaves_no_process(stack_tmp: Path) -> None:
    from f5gdev.devstack.servers import free_port

    broker = Mosquitto(stack_tmp / f"mq-{uuid.uuid4().hex[:6]}", port=free_port())
    broker.start()
    pid = broker.pid()
    broker.start()
    assert broker.pid() == pid
    broker.stop()
    assert not broker.running()
    assert not port_open("127.0.0.1", broker.port)
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()


def test_broker_keeps_queued_qos1_across_restart(new_broker: Callable[[], Mosquitto]) -> None:
    broker = new_broker()
    topic = f"f5g/v1/t/test/{uuid.uuid4().hex[:8]}/telemetry"

    async def scenario() -> list[bytes]:
        sub_kwargs = {
            "hostname": "127.0.0.1",
            "port": broker.port,
            "identifier": "persist-sub",
            "protocol": aiomqtt.ProtocolVersion.V5,
            "clean_start": False,
            "properties": _session_props(),
        }
        async with aiomqtt.Client(**sub_kwargs) as sub:
            await sub.subscribe(topic, qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="persist-pub") as pub:
            for i in range(50):
                await pub.publish(topic, str(i).encode(), qos=1)
        await asyncio.to_thread(broker.restart)
        got: list[bytes] = []
        async with aiomqtt.Client(**sub_kwargs) as sub:
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    assert isinstance(msg.payload, bytes)
                    got.append(msg.payload)
                    if len(got) == 50:
                        break
        return got

    got = asyncio.run(scenario())
    assert got == [str(i).encode() for i in range(50)]


def _session_props() -> object:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props
