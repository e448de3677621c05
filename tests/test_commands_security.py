"""Commands under the broker's access control (dynamic-security accounts, real Mosquitto).

The commander runs with its own service account and a device with its provisioned account:
the loop works end to end, while another device can neither read the first one's commands
nor forge a command or a reply for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.security.broker_auth import BrokerAuth
from tests.conftest import make_settings
from tests.test_commands import Device, add_devices, commander, platform, wait_for
from tests.test_security_broker import client, publish_denied, suback


@pytest.fixture
def secured(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth]]:
    base = stack_tmp / f"mosquitto-cmd-{uuid.uuid4().hex[:8]}"
    auth = BrokerAuth(base / "auth")
    auth.ensure_files()
    server = Mosquitto(base, port=free_port(), auth_dir=auth.directory)
    server.start()
    yield server, auth
    server.stop()


async def test_devices_read_only_their_commands_and_cannot_forge_any(
    secured: tuple[Mosquitto, BrokerAuth], new_database: Callable[..., str]
) -> None:
    server, auth = secured
    url = new_database()
    cam1 = auth.provision_device("p1", "press", "cam-1")
    cam2 = auth.provision_device("p1", "press", "cam-2")
    svc = auth.service_credentials("commands")
    await add_devices(url, [("p1", "press", "cam-1", True), ("p1", "press", "cam-2", True)])
    settings = make_settings(
        url,
        server.port,
        mqtt={"username": svc.username, "password": svc.password},
        api={"rollup_interval_s": 0, "key_cache_s": 0, "rate_limit_per_s": 0},
        commands={"metrics_port": 0, "client_id": "cmd-sec", "poll_s": 0.5},
    )

    # Another device may not subscribe to cam-1's commands, nor to the announcements.
    async with client(server.port, cam2) as c:
        assert await suback(c, "f5g/v1/p1/press/cam-1/cmd/#") >= 0x80
        assert await suback(c, "f5g/v1/p1/commands/#") >= 0x80
        assert await suback(c, "f5g/v1/p1/press/cam-2/cmd/#") < 0x80

    device = Device(server.port, "p1", "press", "cam-1", credentials=(cam1.username, cam1.password))
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "stop")
            # cam-2 forges a command to cam-1 and a reply on cam-1's reply topic.
            await publish_denied(server.port, cam2, "f5g/v1/p1/press/cam-1/cmd/stop")
            await publish_denied(server.port, cam2, "f5g/v1/p1/press/cam-1/reply")
            r = await pf.send("p1", "cam-1", name="stop")
            assert r.status_code == 202
            done = await wait_for(lambda: pf.state_is("p1", r.json()["id"], "completed"))
            assert [e["state"] for e in done["history"]] == [
                "queued",
                "sent",
                "accepted",
                "completed",
            ]
            # cam-1 received exactly the platform's command, nothing cam-2 sent.
            assert device.ids() == [r.json()["id"]]
    finally:
        device.close()
