"""Issue 14 attacks on the broker by an ordinary provisioned device, counted in the database.

A real Mosquitto with the accounts `factory5g devices provision` creates, a real ingest
process logged in with its service account, a legitimate device publishing QoS 1 canaries
with its own account, and a hostile device that tries to take over the service's client
id (in a reconnect fight, and by stealing its persistent session) or to join ingest's
shared subscription. Every acknowledged canary must be stored exactly once, and the broker
must refuse each hostile CONNECT or SUBSCRIBE outright instead of granting it and then
dropping messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto, free_port
from services.core import db
from services.security.broker_auth import BrokerAuth, Credentials
from tests.test_ingest_faults import _health, _settings
from tests.test_ingest_helpers import IngestProcess, ingest_env, inspection, query, wait_until

pytestmark = pytest.mark.slow

V5 = aiomqtt.ProtocolVersion.V5
CANARIES = 1000
INGEST_ID = "factory5g-ingest-0"  # the code defaults of the two services' client ids
RULES_ID = "factory5g-rules-0"
NOT_AUTHORIZED = 0x87


@dataclass
class Secured:
    server: Mosquitto
    auth: BrokerAuth
    url: str
    project: str
    tmp: Path
    ingest: IngestProcess | None = None
    metrics_port: int = field(default_factory=free_port)


@pytest.fixture
def secured(stack_tmp: Path, new_database: Callable[[], str], tmp_path: Path) -> Iterator[Secured]:
    base = stack_tmp / f"mosquitto-trust-{uuid.uuid4().hex[:8]}"
    auth = BrokerAuth(base / "auth")
    auth.ensure_files()
    for name in ("ingest", "rules", "api", "simulator"):
        auth.service_credentials(name)
    server = Mosquitto(base, port=free_port(), auth_dir=auth.directory)
    server.start()
    url = new_database()
    db.migrate(url)
    state = Secured(server, auth, url, f"trust-{uuid.uuid4().hex[:6]}", tmp_path)
    yield state
    if state.ingest is not None:
        state.ingest.stop_quietly()
    server.stop()


async def start_ingest(s: Secured, share_group: str) -> IngestProcess:
    """Ingest as in production: its service account and the default client id."""
    settings = _settings(s.url, s.server.port, s.metrics_port)
    creds = s.auth.service_credentials("ingest")
    env = ingest_env(
        settings,
        F5G_INGEST__CLIENT_ID=INGEST_ID,
        F5G_INGEST__SHARE_GROUP=share_group,
        F5G_MQTT__USERNAME=creds.username,
        F5G_MQTT__PASSWORD=creds.password,
    )
    proc = IngestProcess(env, s.tmp / "ingest.log")
    proc.start()
    s.ingest = proc

    async def healthy() -> bool:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise AssertionError("ingest exited:\n" + proc.log())
        body = await _health(s.metrics_port)
        return body is not None and body["ok"] is True

    await wait_until(healthy, 60, 0.1)
    return proc


def device(s: Secured, name: str) -> Credentials:
    creds = s.auth.provision_device(s.project, "camera", name)
    s.server.reload()  # a no-op where provisioning reaches the broker by itself
    return creds


class Canaries:
    """A legitimate device publishing numbered QoS 1 canaries; remembers what was acked."""

    def __init__(self, s: Secured, creds: Credentials) -> None:
        self.s = s
        self.creds = creds
        self.topic = f"f5g/v1/{s.project}/camera/{creds.username.rsplit('/', 1)[1]}/inspection"
        self.acked: set[int] = set()
        self.sent: set[int] = set()
        self.done = asyncio.Event()

    async def run(self, count: int = CANARIES, rate: float = 200, window: int = 10) -> None:
        seq = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while seq < count and loop.time() < deadline:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.s.server.port,
                    identifier=self.creds.username,
                    username=self.creds.username,
                    password=self.creds.password,
                    protocol=V5,
                    timeout=5,
                ) as client:
                    while seq < count:
                        started = loop.time()
                        batch = list(range(seq, min(count, seq + window)))
                        seq = batch[-1] + 1
                        self.sent.update(batch)
                        now_ms = int(time.time() * 1000)
                        results = await asyncio.gather(
                            *(
                                client.publish(self.topic, inspection(i, now_ms), qos=1)
                                for i in batch
                            ),
                            return_exceptions=True,
                        )
                        self.acked.update(
                            i for i, r in zip(batch, results, strict=True) if r is None
                        )
                        if any(r is not None for r in results):
                            raise aiomqtt.MqttError("publish failed")
                        await asyncio.sleep(max(0.0, window / rate - (loop.time() - started)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
        self.done.set()

    async def assert_all_stored_once(self, within: float = 60) -> None:
        async def stored() -> list[int]:
            rows = await query(
                self.s.url, "SELECT seq FROM inspections WHERE project_id = $1", self.s.project
            )
            return [r[0] for r in rows]

        async def caught_up() -> bool:
            return set(await stored()) >= self.acked

        with contextlib.suppress(AssertionError):
            await wait_until(caught_up, within, 0.25)
        await asyncio.sleep(1.0)  # a late duplicate would show up now
        have = await stored()
        lost = sorted(self.acked - set(have))
        duplicated = len(have) - len(set(have))
        assert len(self.acked) >= CANARIES * 0.9, f"only {len(self.acked)} canaries acknowledged"
        assert (len(lost), duplicated) == (0, 0), (
            f"lost {len(lost)} of {len(self.acked)} acknowledged canaries "
            f"(first {lost[:10]}), {duplicated} duplicated rows"
        )
        assert set(have) <= self.sent


def connect_reason(
    port: int, creds: Credentials, client_id: str, clean_start: bool, hold_s: float
) -> int:
    """CONNECT with `client_id`; the CONNACK reason code (0 = accepted). Holds the
    connection `hold_s` when accepted, as an attacker keeping a stolen session would."""
    result: list[int] = []
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    c.username_pw_set(creds.username, creds.password)

    def on_connect(*args: object) -> None:
        result.append(int(args[3].value))  # type: ignore[attr-defined]
        done.set()

    def on_disconnect(*args: object) -> None:
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    props = None
    if not clean_start:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
    c.loop_start()
    try:
        done.wait(10)
        if result and result[0] == 0:
            time.sleep(hold_s)
    finally:
        c.disconnect()
        c.loop_stop()
    if not result:
        raise AssertionError(f"no CONNACK for client id {client_id!r}")
    return result[0]


async def hostile_connects(
    s: Secured, evil: Credentials, ids: list[str], clean_start: bool, stop: asyncio.Event
) -> list[tuple[str, int]]:
    """Connect with each foreign client id in turn until `stop`; every CONNACK reason."""
    reasons: list[tuple[str, int]] = []
    hold = 0.3 if clean_start else 1.0
    while not stop.is_set():
        for cid in ids:
            rc = await asyncio.to_thread(
                connect_reason, s.server.port, evil, cid, clean_start, hold
            )
            reasons.append((cid, rc))
    return reasons


@pytest.mark.parametrize("clean_start", [True, False], ids=["reconnect-fight", "session-steal"])
async def test_device_cannot_take_over_service_or_device_client_ids(
    secured: Secured, clean_start: bool
) -> None:
    s = secured
    legit = device(s, "cam-1")
    evil = device(s, "evil")
    await start_ingest(s, share_group="")
    canaries = Canaries(s, legit)
    stop = asyncio.Event()
    attack = asyncio.ensure_future(
        hostile_connects(s, evil, [INGEST_ID, RULES_ID, legit.username], clean_start, stop)
    )
    await canaries.run()
    stop.set()
    reasons = await attack
    assert reasons, "the attack never ran"
    accepted = [(cid, rc) for cid, rc in reasons if rc < 0x80]
    await canaries.assert_all_stored_once()
    assert not accepted, f"{len(accepted)} of {len(reasons)} hostile CONNECTs accepted"
    assert {rc for _, rc in reasons} == {NOT_AUTHORIZED}


async def test_device_cannot_join_ingest_shared_subscription(secured: Secured) -> None:
    s = secured
    group = "f5g-ingest"
    legit = device(s, "cam-1")
    evil = device(s, "evil")
    await start_ingest(s, share_group=group)
    other_cmd = f"f5g/v1/{s.project}/camera/cam-1/cmd/#"
    # The first is ingest's own native filter (a share group is per group and filter).
    filters = [f"$share/{group}/f5g/v1/+/+/+/+", f"$share/{group}/f5g/v1/#", "f5g/v1/#", other_cmd]
    canaries = Canaries(s, legit)
    stop = asyncio.Event()

    async def subscribe_and_stay() -> list[list[int]]:
        seen = []
        while not stop.is_set():
            # Each subscriber stays connected a while: a granted $share member takes its
            # share of ingest's messages and the broker then drops them (read ACL).
            seen.append(
                await asyncio.to_thread(subscribe_reasons, s.server.port, evil, filters, 1.0)
            )
        return seen

    attack = asyncio.ensure_future(subscribe_and_stay())
    await canaries.run()
    stop.set()
    seen = await attack
    await canaries.assert_all_stored_once()
    assert seen
    assert all(codes == [NOT_AUTHORIZED] * len(filters) for codes in seen), seen


def subscribe_reasons(
    port: int, creds: Credentials, filters: list[str], hold_s: float
) -> list[int]:
    acks: dict[int, int] = {}
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=creds.username, protocol=paho.MQTTv5)
    c.username_pw_set(creds.username, creds.password)
    c.on_connect = lambda *a: done.set()
    c.on_subscribe = lambda _c, _u, mid, rcs, _p: acks.__setitem__(mid, int(rcs[0].value))
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
        mids = [c.subscribe(f, qos=1)[1] for f in filters]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(m in acks for m in mids):
            time.sleep(0.02)
        time.sleep(hold_s)
        return [acks.get(m, -1) for m in mids]
    finally:
        c.disconnect()
        c.loop_stop()
