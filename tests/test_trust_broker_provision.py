"""Issue 14, provisioning and alarm topics: parallel `devices provision`, reserved names,
forged alarm transitions, and the API account's announcement rights, on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from services.devstack.servers import Mosquitto, free_port
from services.rules.publisher import alarm_topic
from services.security.broker_auth import BrokerAuth, Credentials, ProvisionError

V5 = aiomqtt.ProtocolVersion.V5
REPO = Path(__file__).resolve().parents[1]
NOT_AUTHORIZED = 0x87


@pytest.fixture
def secured(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth]]:
    base = stack_tmp / f"mosquitto-prov-{uuid.uuid4().hex[:8]}"
    auth = BrokerAuth(base / "auth")
    auth.ensure_files()
    server = Mosquitto(base, port=free_port(), auth_dir=auth.directory)
    server.start()
    yield server, auth
    server.stop()


def _client(port: int, creds: Credentials) -> aiomqtt.Client:
    device = creds.username.startswith("dev/")
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=creds.username if device else None,
        username=creds.username,
        password=creds.password,
        protocol=V5,
        timeout=10,
    )


def publish_reasons(port: int, creds: Credentials, topics: list[str], qos: int = 1) -> list[int]:
    """PUBACK reason of each publish on one connection (0: accepted, 0x87: not
    authorised), and -1 for any publish after the connection was lost.

    Raw paho: aiomqtt ignores PUBACK reason codes (a refused publish looks delivered)."""
    acks: dict[int, int] = {}
    connected = threading.Event()
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=creds.username if creds.username.startswith("dev/") else "",
        protocol=paho.MQTTv5,
    )
    c.username_pw_set(creds.username, creds.password)
    c.on_connect = lambda *_a: connected.set()
    # 0x10 "no matching subscribers" is a success as well: report it as 0.
    c.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(
        mid, int(rc.value) if rc.is_failure else 0
    )
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        out = []
        for topic in topics:
            info = c.publish(topic, b"{}", qos=qos)
            deadline = time.monotonic() + 10
            while qos and info.mid not in acks and time.monotonic() < deadline:
                time.sleep(0.01)
            out.append(acks.get(info.mid, -1) if qos else int(info.rc))
        return out
    finally:
        c.disconnect()
        c.loop_stop()


def test_ten_parallel_provisions_make_ten_working_accounts(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    server, auth = secured
    project = f"par-{uuid.uuid4().hex[:6]}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli",
                "devices",
                "provision",
                project,
                "camera",
                f"cam-{i}",
                "--auth-dir",
                str(auth.directory),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(10)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, outputs
    creds = []
    for out, _ in outputs:
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        creds.append(Credentials(fields["username"], fields["password"]))
    server.reload()  # where provisioning reaches the broker by itself, a no-op
    working = 0
    for c in creds:
        topic = f"f5g/v1/{c.username.removeprefix('dev/')}/inspection"
        with contextlib.suppress(AssertionError):
            working += publish_reasons(server.port, c, [topic]) == [0]
    kept = {a.username for a in auth.devices()}
    assert (working, len(kept)) == (10, 10), f"{working} of 10 accounts work, {len(kept)} kept"


@pytest.mark.parametrize(
    ("project", "kind", "device"),
    [
        ("p1", "alarms", "x"),  # would own f5g/v1/p1/alarms/x/#: forged alarm transitions
        ("p1", "Alarms", "x"),
        ("alarms", "camera", "x"),
        ("p1", "cmd", "x"),
        ("p1", "camera", "status"),
        ("p1", "camera", "reply"),
        ("p1", "camera", "$SYS"),
        ("p1", "camera", "a/b"),
        ("p1", "+", "x"),
    ],
)
def test_reserved_and_invalid_names_are_refused(
    tmp_path: Path, project: str, kind: str, device: str
) -> None:
    auth = BrokerAuth(tmp_path / "auth")
    with pytest.raises(ProvisionError):
        auth.provision_device(project, kind, device)
    assert auth.devices() == []


async def test_device_cannot_publish_alarm_transitions(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    server, auth = secured
    cam = auth.provision_device("p1", "camera", "cam-1")
    rules = auth.service_credentials("rules")
    got: list[str] = []
    async with _client(server.port, rules) as watcher:
        await watcher.subscribe("f5g/v1/+/alarms/#", qos=1)

        async def read() -> None:
            async for msg in watcher.messages:
                got.append(msg.topic.value)

        reader = asyncio.ensure_future(read())
        forged = [
            alarm_topic("f5g/v1", "p1", "camera", "cam-1", "vision_fail_rate"),
            alarm_topic("f5g/v1", "p1", "camera", "cam-2", "vision_fail_rate"),
            "f5g/v1/p2/alarms/camera/cam-1/x",
        ]
        # Its own data still goes through on the same connection.
        own = "f5g/v1/p1/camera/cam-1/inspection"
        codes = await asyncio.to_thread(publish_reasons, server.port, cam, [*forged, own])
        assert codes == [NOT_AUTHORIZED] * 3 + [0]
        await asyncio.sleep(0.5)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await reader
    assert got == []


async def test_api_account_announces_alarm_transitions_only_and_keeps_its_connection(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    """The API publishes operator acknowledge/clear on the rules' alarm topic; anything else
    is refused with PUBACK 0x87 (QoS 1) or dropped (QoS 0), and the connection stays up."""
    server, auth = secured
    api = auth.service_credentials("api")
    transition = alarm_topic("f5g/v1", "p1", "camera", "cam-1", "vision_fail_rate")
    cmd = "f5g/v1/p1/camera/cam-1/cmd/reboot"
    topics = [transition, cmd, "f5g/v1/p1/camera/cam-1/inspection", transition]
    codes = await asyncio.to_thread(publish_reasons, server.port, api, topics)
    assert codes == [0, NOT_AUTHORIZED, NOT_AUTHORIZED, 0]
    # A refused QoS 0 publish is dropped silently, and the connection stays up as well.
    assert await asyncio.to_thread(publish_reasons, server.port, api, [cmd], 0) == [0]
