"""Broker access on a real Mosquitto with the dynamic-security accounts (`devices provision`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.security.broker_auth import BrokerAuth, Credentials

V5 = aiomqtt.ProtocolVersion.V5


@pytest.fixture
def secured(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth]]:
    base = stack_tmp / f"mosquitto-auth-{uuid.uuid4().hex[:8]}"
    auth = BrokerAuth(base / "auth")
    auth.ensure_files()
    server = Mosquitto(base, port=free_port(), auth_dir=auth.directory)
    server.start()
    yield server, auth
    server.stop()


def client(port: int, creds: Credentials | None) -> aiomqtt.Client:
    # A device account must connect with its user name as client id (services: any id).
    device = creds is not None and creds.username.startswith("dev/")
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=creds.username if device and creds else None,
        protocol=V5,
        username=creds.username if creds else None,
        password=creds.password if creds else None,
        timeout=5,
    )


@contextlib.asynccontextmanager
async def collector(port: int, creds: Credentials, *filters: str) -> AsyncIterator[list[str]]:
    """Everything the account receives on `filters` while the body runs, plus a short drain.
    Each filter must be granted: the broker refuses a SUBSCRIBE beyond the account's rights."""
    got: list[str] = []
    async with client(port, creds) as sub:
        for filt in filters:
            assert await suback(sub, filt) < 0x80, f"{creds.username} may not subscribe {filt}"

        async def read() -> None:
            async for msg in sub.messages:
                got.append(f"{msg.topic.value} {msg.payload!r}")

        task = asyncio.ensure_future(read())
        try:
            yield got
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def suback(c: aiomqtt.Client, filt: str) -> int:
    """The SUBACK reason code of one subscription (0x87: not authorised)."""
    granted = await c.subscribe(filt, qos=1)
    code = granted[0]
    return int(code.value) if hasattr(code, "value") else int(code)


async def refused(port: int, creds: Credentials | None) -> bool:
    try:
        async with client(port, creds):
            return False
    except aiomqtt.MqttError:
        return True


async def publish_denied(port: int, creds: Credentials, topic: str) -> None:
    """A publish the ACL forbids: Mosquitto answers PUBACK 0x87 and the client drops the link."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with client(port, creds) as c:
            await c.publish(topic, b"forbidden", qos=1)
            await asyncio.sleep(0.2)


async def test_anonymous_and_wrong_password_are_refused(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    server, auth = secured
    dev = auth.provision_device("p1", "camera", "cam-1")
    assert dev.live, "provisioning reaches the running broker at once"
    assert await refused(server.port, None)
    assert await refused(server.port, Credentials(dev.username, dev.password + "x"))
    assert await refused(server.port, Credentials("ingest", "guess"))
    assert not await refused(server.port, dev)


async def test_device_publishes_only_under_its_own_topics(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    server, auth = secured
    ingest = auth.service_credentials("ingest")
    cam1 = auth.provision_device("p1", "camera", "cam-1")
    auth.provision_device("p1", "camera", "cam-2")
    await asyncio.sleep(0.3)
    own = "f5g/v1/p1/camera/cam-1/inspection"
    async with collector(server.port, ingest, "f5g/v1/#", "spBv1.0/#") as got:
        async with client(server.port, cam1) as c:
            await c.publish(own, b"mine", qos=1)
        for foreign in (
            "f5g/v1/p1/camera/cam-2/inspection",  # another device of the same project
            "f5g/v1/p2/camera/cam-1/inspection",  # same id under another project
            "f5g/v1/p1/agv/cam-1/agv",  # same id under another kind
            "f5g/v1/p1/alarms/camera/cam-1/fake",  # forging an alarm
            "spBv1.0/p1/NCMD/line1",  # a command to someone else
        ):
            await publish_denied(server.port, cam1, foreign)
    assert got == [f"{own} b'mine'"]


async def test_device_reads_only_its_commands(secured: tuple[Mosquitto, BrokerAuth]) -> None:
    server, auth = secured
    simulator = auth.service_credentials("simulator")
    cam1 = auth.provision_device("p1", "camera", "cam-1")
    await asyncio.sleep(0.3)
    async with client(server.port, cam1) as c:
        for foreign in ("#", "f5g/v1/#", "f5g/v1/p1/camera/cam-2/cmd/#", "$share/g/f5g/v1/#"):
            assert await suback(c, foreign) == 0x87, foreign
    own = "f5g/v1/p1/camera/cam-1/cmd/#"
    async with collector(server.port, cam1, own) as got, client(server.port, simulator) as c:
        await c.publish("f5g/v1/p1/camera/cam-1/cmd/reboot", b"for-me", qos=1)
        await c.publish("f5g/v1/p1/camera/cam-2/cmd/reboot", b"not-for-me", qos=1)
        await c.publish("f5g/v1/p1/camera/cam-2/inspection", b"other-data", qos=1)
    assert got == ["f5g/v1/p1/camera/cam-1/cmd/reboot b'for-me'"]


async def test_revoked_device_is_refused_without_broker_restart(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    server, auth = secured
    ingest = auth.service_credentials("ingest")
    cam1 = auth.provision_device("p1", "camera", "cam-1")
    await asyncio.sleep(0.3)
    pid = server.pid()
    assert not await refused(server.port, cam1)

    async with collector(server.port, ingest, "f5g/v1/#") as got:
        dropped = False
        try:
            async with client(server.port, cam1) as live:
                await live.publish("f5g/v1/p1/camera/cam-1/inspection", b"before", qos=1)
                auth.revoke_device("p1", "camera", "cam-1")
                await asyncio.sleep(1.0)
                await live.publish("f5g/v1/p1/camera/cam-1/inspection", b"after", qos=1)
                await asyncio.sleep(0.3)
        except aiomqtt.MqttError:
            dropped = True
    assert server.pid() == pid, "revocation must not restart the broker"
    assert await refused(server.port, cam1)
    # Deleting the account through dynamic security drops the device's live session at once.
    assert dropped
    assert got == ["f5g/v1/p1/camera/cam-1/inspection b'before'"]


async def test_service_accounts_receive_what_their_services_subscribe_to(
    secured: tuple[Mosquitto, BrokerAuth],
) -> None:
    """The ACL table must follow the services, or a service starves: each filter a service
    subscribes to must be granted, and delivery on it is what counts."""
    from services.core.settings import load_settings
    from services.protocols.adapters.registry import load_adapters
    from services.rules.service import RulesService

    server, auth = secured
    settings = load_settings(ingest={"metrics_port": 0}, rules={"metrics_port": 0})
    wanted = {
        "ingest": [f for a in load_adapters(settings) for f in a.topic_filters()],
        "rules": RulesService(settings).ingress.topic_filters(),
        "api": ["f5g/v1/+/alarms/#", "f5g/v1/p1/camera/cam-1/+"],
    }
    publisher = auth.service_credentials("simulator")
    for name in wanted:
        auth.service_credentials(name)
    await asyncio.sleep(0.3)
    for name, filters in wanted.items():
        # One concrete topic per filter, wildcards filled in.
        topics = sorted({f.replace("+", "x").replace("#", "x") for f in filters})
        account = auth.service_credentials(name)
        async with (
            collector(server.port, account, *filters) as got,
            client(server.port, publisher) as pub,
        ):
            for t in topics:
                await pub.publish(t, b"1", qos=1)
        assert sorted({g.split(" ")[0] for g in got}) == topics, name
