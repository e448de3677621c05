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

from f5gdev.devstack.servers import Mosquitto, free_port
from services.api.alarms.lifecycle import announceable
from services.protocols.alarms import alarm_topic
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


def publish_once(port: int, creds: Credentials, topic: str, qos: int = 1) -> tuple[int, bool]:
    """One publish on a fresh connection: its PUBACK reason (0: accepted, also for 0x10 "no
    matching subscribers"; 0x87: not authorised; always 0 at QoS 0) and whether the broker
    then dropped the connection (within a second). Raw paho without automatic reconnection:
    aiomqtt ignores PUBACK reason codes, and a reconnecting client hides a drop."""
    acked: list[int] = []
    connected = threading.Event()
    dropped = threading.Event()
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=creds.username if creds.username.startswith("dev/") else "",
        protocol=paho.MQTTv5,
        reconnect_on_failure=False,
    )
    c.username_pw_set(creds.username, creds.password)
    c.on_connect = lambda *_a: connected.set()
    c.on_disconnect = lambda *_a: dropped.set()
    c.on_publish = lambda _c, _u, _mid, rc, _p: acked.append(int(rc.value) if rc.is_failure else 0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        c.publish(topic, b"{}", qos=qos)
        deadline = time.monotonic() + 10
        while qos and not acked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert acked or not qos, f"no PUBACK for {topic}"
        was_dropped = dropped.wait(1.0)
        return (acked[0] if qos else 0), was_dropped
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
            working += publish_once(server.port, c, topic)[0] == 0
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
        codes = [
            (await asyncio.to_thread(publish_once, server.port, cam, t))[0] for t in [*forged, own]
        ]
        assert codes == [NOT_AUTHORIZED] * 3 + [0]
        await asyncio.sleep(0.5)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await reader
    assert got == []


async def test_api_account_may_announce_alarm_transitions_only(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    """The API publishes operator acknowledge/clear on the rules' alarm topic (before: its
    account was read-only, every announcement refused and its connection dropped)."""
    server, auth = secured
    api = auth.service_credentials("api")
    transition = alarm_topic("f5g/v1", "p1", "camera", "cam-1", "vision_fail_rate")
    cmd = "f5g/v1/p1/camera/cam-1/cmd/reboot"

    def once(topic: str, qos: int = 1) -> tuple[int, bool]:
        return publish_once(server.port, api, topic, qos)

    assert await asyncio.to_thread(once, transition) == (0, False)
    # Mosquitto 2.0.11 closes the connection after refusing a publish, QoS 1 (after PUBACK
    # 0x87) and QoS 0 alike: the API must never publish outside its rights, so its
    # announcement path checks the topic first (services/api/alarms/lifecycle.py).
    assert await asyncio.to_thread(once, cmd) == (NOT_AUTHORIZED, True)
    assert await asyncio.to_thread(once, cmd, 0) == (0, True)
    assert announceable("f5g/v1", transition)


@pytest.mark.parametrize(
    "topic",
    [
        "f5g/v1/p1/camera/cam-1/cmd/reboot",
        "f5g/v1/p1/alarms/camera/cam-1",
        "f5g/v1/p1/alarms/camera/cam-1/r/extra",
        "f5g/v1/p1/alarms/camera/+/r",
        "f5g/v1/p1/alarms/camera/#/r",
        "f5g/v2/p1/alarms/camera/cam-1/r",
    ],
)
def test_api_never_announces_outside_its_grant(topic: str) -> None:
    assert not announceable("f5g/v1", topic)


async def test_service_replicas_connect_side_by_side(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    """Service accounts have no fixed client id: replicas each use their own and may all
    join the service's shared group, while a device can use none of those ids."""
    server, auth = secured
    ingest = auth.service_credentials("ingest")
    cam = auth.provision_device("p1", "camera", "cam-1")
    group = "$share/f5g-ingest/f5g/v1/+/+/+/+"
    clients = [
        aiomqtt.Client(
            "127.0.0.1",
            server.port,
            identifier=f"factory5g-ingest-{i}",
            username=ingest.username,
            password=ingest.password,
            protocol=V5,
            timeout=10,
        )
        for i in range(3)
    ]
    async with clients[0] as a, clients[1] as b, clients[2] as c:
        for replica in (a, b, c):
            granted = await replica.subscribe(group, qos=1)
            assert [int(getattr(g, "value", g)) for g in granted] == [1]
        for i in range(3):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    "127.0.0.1",
                    server.port,
                    identifier=f"factory5g-ingest-{i}",
                    username=cam.username,
                    password=cam.password,
                    protocol=V5,
                    timeout=10,
                ):
                    pass
        # All three replicas are still connected.
        for replica in (a, b, c):
            await replica.subscribe("f5g/v1/p1/+/+/+", qos=1)
