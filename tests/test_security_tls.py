"""TLS and mutual TLS on the broker's device listener, with the development CA."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.security.broker_auth import BrokerAuth
from services.security.certs import DevCA

V5 = aiomqtt.ProtocolVersion.V5


@pytest.fixture
def tls_broker(stack_tmp: Path) -> Iterator[Callable[[bool], tuple[Mosquitto, BrokerAuth, DevCA]]]:
    started: list[Mosquitto] = []

    def make(mutual: bool) -> tuple[Mosquitto, BrokerAuth, DevCA]:
        base = stack_tmp / f"mosquitto-tls-{uuid.uuid4().hex[:8]}"
        auth = BrokerAuth(base / "auth")
        auth.ensure_files()
        ca = DevCA(base / "tls")
        ca.ensure()
        server = Mosquitto(
            base,
            port=free_port(),
            auth_dir=auth.directory,
            tls_port=free_port(),
            tls_dir=ca.directory,
            require_certificate=mutual,
        )
        started.append(server)
        return server, auth, ca

    yield make
    for server in started:
        server.stop()


def _context(ca: DevCA, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def _roundtrip(
    port: int,
    ctx: ssl.SSLContext,
    username: str | None = None,
    password: str | None = None,
    identifier: str | None = None,
) -> bytes:
    async with aiomqtt.Client(
        "localhost",
        port,
        identifier=identifier if identifier is not None else username,
        protocol=V5,
        tls_context=ctx,
        timeout=3,
        username=username,
        password=password,
    ) as c:
        await c.subscribe("f5g/v1/p1/camera/cam-1/cmd/#")
        await c.publish("f5g/v1/p1/camera/cam-1/cmd/ping", b"pong", qos=1)
        async for msg in c.messages:
            return bytes(msg.payload)  # type: ignore[arg-type]
    raise AssertionError("no message")


async def test_tls_listener_with_password(
    tls_broker: Callable[[bool], tuple[Mosquitto, BrokerAuth, DevCA]],
) -> None:
    server, auth, ca = tls_broker(False)
    creds = auth.provision_device("p1", "camera", "cam-1")
    server.start()
    assert server.tls_port is not None
    assert (
        await _roundtrip(
            server.tls_port, _context(ca), username=creds.username, password=creds.password
        )
        == b"pong"
    )
    # A client that does not trust the development CA refuses the broker.
    with pytest.raises(aiomqtt.MqttError):
        await _roundtrip(
            server.tls_port,
            ssl.create_default_context(),
            username=creds.username,
            password=creds.password,
        )


async def test_mutual_tls_takes_the_account_from_the_certificate(
    tls_broker: Callable[[bool], tuple[Mosquitto, BrokerAuth, DevCA]],
) -> None:
    server, auth, ca = tls_broker(True)
    creds = auth.provision_device("p1", "camera", "cam-1")
    cert, key = ca.issue_client(creds.username)
    server.start()
    assert server.tls_port is not None
    assert await _roundtrip(server.tls_port, _context(ca, cert, key)) == b"pong"
    # Without a client certificate the handshake fails, password or not.
    with pytest.raises(aiomqtt.MqttError):
        await _roundtrip(
            server.tls_port, _context(ca), username=creds.username, password=creds.password
        )


async def test_mutual_tls_binds_the_client_id_to_the_certificate(
    tls_broker: Callable[[bool], tuple[Mosquitto, BrokerAuth, DevCA]],
) -> None:
    """A certificate login skips the password check where the plugin binds the client id,
    so the listener replaces whatever id the device sends by its certificate's account:
    cam-2 announcing cam-1's client id (or ingest's) cannot disconnect anyone."""
    server, auth, ca = tls_broker(True)
    cam1 = auth.provision_device("p1", "camera", "cam-1")
    cam2 = auth.provision_device("p1", "camera", "cam-2")
    cert1, key1 = ca.issue_client(cam1.username)
    cert2, key2 = ca.issue_client(cam2.username)
    server.start()
    assert server.tls_port is not None
    async with aiomqtt.Client(
        "localhost",
        server.tls_port,
        identifier=cam1.username,
        protocol=V5,
        tls_context=_context(ca, cert1, key1),
    ) as victim:
        for stolen in (cam1.username, "factory5g-ingest-0"):
            async with aiomqtt.Client(
                "localhost",
                server.tls_port,
                identifier=stolen,
                protocol=V5,
                tls_context=_context(ca, cert2, key2),
            ) as thief:
                granted = await thief.subscribe("$share/f5g-ingest/f5g/v1/#", qos=1)
                assert [int(getattr(g, "value", g)) for g in granted] == [0x87]
        # The victim's connection is still the live one: a round trip on it works.
        await victim.subscribe("f5g/v1/p1/camera/cam-1/cmd/#", qos=1)
        await victim.publish("f5g/v1/p1/camera/cam-1/cmd/ping", b"still-here", qos=1)
        async for msg in victim.messages:
            assert msg.payload == b"still-here"
            break
