"""The services' MQTT session over TLS and mutual TLS, configured from F5G_MQTT__* settings.

`services.core.runtime.mqtt_endpoint` / `mqtt_connect_options` turn the settings into the
session's TLS context and credentials; a real Mosquitto with the development CA checks
them: a round trip with a QoS 1 PUBACK reason code, and a refusal without the client
certificate.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.core.mqtt import Backoff, Session
from services.core.mqtt.connection import Connection, MqttError
from services.core.runtime import mqtt_connect_options, mqtt_endpoint
from services.core.settings import MqttSettings, Settings
from services.security.broker_auth import BrokerAuth
from services.security.certs import DevCA

CMD = "f5g/v1/p1/camera/cam-1/cmd/ping"


@pytest.fixture
def tls_broker(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth, DevCA]]:
    base = stack_tmp / f"mosquitto-mqtt-tls-{uuid.uuid4().hex[:8]}"
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
        require_certificate=True,
    )
    yield server, auth, ca
    server.stop()


async def _round_trip(settings: Settings, client_id: str) -> tuple[bytes, int]:
    got: asyncio.Queue[bytes] = asyncio.Queue()
    session = Session(
        mqtt_endpoint(settings, connect_timeout_s=5),
        lambda: mqtt_connect_options(settings, client_id, clean_start=True),
        [(CMD.rsplit("/", 1)[0] + "/#", 1)],
        lambda t, p, m, q, d: got.put_nowait(p),
        Backoff(0.1, 0.2),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    try:
        await asyncio.wait_for(session.up.wait(), 30)
        fut = session.publish(CMD, b"pong", 1)
        assert fut is not None
        reason = await asyncio.wait_for(fut, 30)
        payload = await asyncio.wait_for(got.get(), 30)
    finally:
        stop.set()
        await task
    return payload, reason


async def test_session_over_mutual_tls_from_settings(
    tls_broker: tuple[Mosquitto, BrokerAuth, DevCA],
) -> None:
    server, auth, ca = tls_broker
    creds = auth.provision_device("p1", "camera", "cam-1")
    cert, key = ca.issue_client(creds.username)
    server.start()
    assert server.tls_port is not None
    mqtt = MqttSettings(
        host="localhost",
        port=server.tls_port,
        tls=True,
        ca_file=str(ca.ca_cert),
        cert_file=str(cert),
        key_file=str(key),
    )
    settings = Settings(mqtt=mqtt)
    assert await _round_trip(settings, creds.username) == (b"pong", 0)

    # Without the client certificate the broker refuses the TLS handshake.
    no_cert = Settings(mqtt=mqtt.model_copy(update={"cert_file": None, "key_file": None}))
    ep = mqtt_endpoint(no_cert, connect_timeout_s=5)
    with pytest.raises(MqttError):
        await Connection.open(
            ep.host,
            ep.port,
            mqtt_connect_options(no_cert, creds.username, clean_start=True),
            lambda *a: None,
            ep.tls,
            5,
        )
