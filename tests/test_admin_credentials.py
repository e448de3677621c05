"""Broker credentials of every kind through the API alone, against a real Mosquitto with
dynamic security, real ingest and the real database (the API under its own role).

Per protocol a real client is onboarded with nothing but API calls: issue -> it connects
with the fixed client id -> it publishes -> ingest stores the data -> rotate (old password
refused) -> revoke (refused on the live broker within 2 s). Each credential then attacks
outside its grant, and every attempt the broker let through is counted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from services.core import db
from services.protocols import sparkplug as spb
from services.security import db_roles
from services.security.broker_auth import BrokerAuth
from tests.conftest import make_settings
from tests.test_api_support import auth, client
from tests.test_ingest_helpers import inspection, running, scalar, wait_until

NOT_AUTHORIZED = 0x87
BOOT = "f5g_Cred" + uuid.uuid4().hex[:6] + "_" + "c" * 40
REVOKE_WITHIN_S = 2.0


@dataclass
class Probe:
    """One real MQTT v5 client (paho, own thread, no automatic reconnection) that records
    what the broker answered: CONNACK, PUBACK and SUBACK reason codes, drops, messages."""

    port: int
    username: str
    password: str
    client_id: str
    connack: list[int] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: list[list[int]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    dropped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._connected = threading.Event()
        self._c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            reconnect_on_failure=False,
        )
        self._c.username_pw_set(self.username, self.password)
        self._c.on_connect = self._on_connect
        self._c.on_disconnect = lambda *_a: self.dropped.set()
        self._c.on_publish = self._on_publish
        self._c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.append(
            [int(rc.value) for rc in rcs]
        )
        self._c.on_message = lambda _c, _u, msg: self.received.append(msg.topic)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack.append(int(rc.value))
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        self.pubacks[mid] = int(rc.value) if rc.is_failure else 0

    def connect(self) -> int:
        """CONNACK reason code (0: accepted); the broker may also just close the socket."""
        self._c.connect("127.0.0.1", self.port)
        self._c.loop_start()
        if not self._connected.wait(10):
            return -1 if self.dropped.is_set() else -2
        return self.connack[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """PUBACK reason code: 0 accepted, 0x87 refused; -1 when the connection went."""
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        deadline = time.monotonic() + 10
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            if self.dropped.is_set():
                return -1
            time.sleep(0.005)
        return self.pubacks.get(info.mid, -1)

    def subscribe(self, topic: str) -> int:
        before = len(self.subacks)
        self._c.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while len(self.subacks) == before and time.monotonic() < deadline:
            if self.dropped.is_set():
                return -1
            time.sleep(0.005)
        return self.subacks[-1][0] if len(self.subacks) > before else -1

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()


@dataclass
class Env:
    c: httpx.AsyncClient
    url: str
    broker: Mosquitto
    project: str
    broker_auth: BrokerAuth


@pytest.fixture(scope="module")
def secured(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth]]:
    base = stack_tmp / f"mosquitto-cred-{uuid.uuid4().hex[:8]}"
    broker_auth = BrokerAuth(base / "auth")
    broker_auth.ensure_files()
    server = Mosquitto(base, port=free_port(), auth_dir=broker_auth.directory)
    server.start()
    yield server, broker_auth
    server.stop()


@pytest.fixture(scope="module")
def api_url(pg: Postgres, new_database: Callable[..., str]) -> tuple[str, str]:
    owner = new_database()
    user = f"t_api_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.API, "pw-" + user))
    return owner, f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{owner.rsplit('/', 1)[1]}"


@pytest.fixture(scope="module")
async def env(
    secured: tuple[Mosquitto, BrokerAuth], api_url: tuple[str, str]
) -> AsyncIterator[Env]:
    broker, broker_auth = secured
    owner, api = api_url
    project = f"hall-{uuid.uuid4().hex[:6]}"
    ingest_creds = broker_auth.service_credentials("ingest")
    api_creds = broker_auth.service_credentials("api")
    tag = uuid.uuid4().hex[:8]
    ingest_settings = make_settings(
        owner,
        broker.port,
        mqtt={"username": ingest_creds.username, "password": ingest_creds.password},
        ingest={
            "client_id": f"ingest-{tag}",
            "metrics_port": 0,
            "batch_max_delay_ms": 10,
            "vda5050_projects": {"Acme": project},
        },
    )
    api_settings = make_settings(
        api,
        broker.port,
        mqtt={"username": api_creds.username, "password": api_creds.password},
        api={
            "rollup_interval_s": 0,
            "key_cache_s": 0,
            "bootstrap_key": BOOT,
            "broker_auth_dir": str(broker_auth.directory),
        },
        ingest={"vda5050_projects": {"Acme": project}},
    )
    async with running(ingest_settings), client(api_settings) as (_, c):
        yield Env(c, owner, broker, project, broker_auth)


async def _issue(env: Env, **body: Any) -> dict[str, Any]:
    r = await env.c.post("/api/v1/credentials", json=body, headers=auth(BOOT))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    assert out["live"] is True
    return out


def _probe(env: Env, issued: dict[str, Any], password: str | None = None, **over: str) -> Probe:
    return Probe(
        env.broker.port,
        over.get("username", issued["username"]),
        password if password is not None else issued["password"],
        over.get("client_id", issued["client_id"]),
    )


async def _connected(env: Env, issued: dict[str, Any], **over: str) -> Probe:
    probe = _probe(env, issued, **over)
    assert await asyncio.to_thread(probe.connect) == 0
    return probe


async def _attack(
    env: Env, issued: dict[str, Any], publishes: list[str], subscribes: list[str]
) -> tuple[int, int]:
    """(publishes the broker accepted, subscriptions it granted) outside the grant, each on
    a fresh connection (Mosquitto closes a connection after a refused publish)."""
    accepted = granted = 0
    for topic in publishes:
        probe = await _connected(env, issued)
        try:
            rc = await asyncio.to_thread(probe.publish, topic, b'{"forged": true}')
            accepted += rc == 0
        finally:
            await asyncio.to_thread(probe.close)
    probe = await _connected(env, issued)
    try:
        for topic in subscribes:
            rc = await asyncio.to_thread(probe.subscribe, topic)
            granted += rc in (0, 1, 2)
            if probe.dropped.is_set():
                probe = await _connected(env, issued)
    finally:
        await asyncio.to_thread(probe.close)
    return accepted, granted


async def _rotate_and_revoke(env: Env, issued: dict[str, Any]) -> None:
    """Rotation: the old password is refused, the new one works. Revocation: a live
    session is closed and a new connection refused within REVOKE_WITHIN_S."""
    cid = issued["credential"]["id"]
    r = await env.c.post(f"/api/v1/credentials/{cid}/rotate", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["password"] != issued["password"]
    old = _probe(env, issued)
    assert await asyncio.to_thread(old.connect) != 0
    await asyncio.to_thread(old.close)
    live = await _connected(env, rotated)
    try:
        started = time.monotonic()
        r = await env.c.post(f"/api/v1/credentials/{cid}/revoke", headers=auth(BOOT))
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"] is not None
        assert await asyncio.to_thread(live.dropped.wait, REVOKE_WITHIN_S)
        again = _probe(env, rotated)
        assert await asyncio.to_thread(again.connect) != 0
        await asyncio.to_thread(again.close)
        assert time.monotonic() - started < REVOKE_WITHIN_S + 1.0  # one connect round trip
    finally:
        await asyncio.to_thread(live.close)
    r = await env.c.post(f"/api/v1/credentials/{cid}/revoke", headers=auth(BOOT))
    assert r.status_code == 409


async def _audited(env: Env, cid: int) -> list[str]:
    r = await env.c.get(
        "/api/v1/audit",
        params={"target_type": "credential", "target_id": str(cid)},
        headers=auth(BOOT),
    )
    assert r.status_code == 200, r.text
    return [i["action"] for i in reversed(r.json()["items"])]


# ------------------------------------------------------------------ native device


async def test_native_device_onboarded_through_the_api_alone(env: Env) -> None:
    issued = await _issue(env, type="native", project=env.project, kind="camera", device="cam-1")
    assert issued["username"] == issued["client_id"] == f"dev/{env.project}/camera/cam-1"
    assert issued["grants"]["publish"] == [f"f5g/v1/{env.project}/camera/cam-1/#"]
    dev = await _connected(env, issued)
    try:
        topic = f"f5g/v1/{env.project}/camera/cam-1/inspection"
        rcs = [await asyncio.to_thread(dev.publish, topic, inspection(i)) for i in range(5)]
        assert rcs == [0] * 5
    finally:
        await asyncio.to_thread(dev.close)

    async def stored() -> bool:
        n = await scalar(
            env.url, "SELECT count(*) FROM inspections WHERE project_id = $1", env.project
        )
        return int(n) == 5

    await wait_until(stored, 20)
    # Another client id for the same account: refused.
    thief = _probe(env, issued, client_id="factory5g-ingest-0")
    assert await asyncio.to_thread(thief.connect) != 0
    await asyncio.to_thread(thief.close)
    accepted, granted = await _attack(
        env,
        issued,
        publishes=[
            f"f5g/v1/{env.project}/camera/cam-2/inspection",
            f"f5g/v1/{env.project}/alarms/camera/cam-1/r",
            "f5g/v1/other/camera/cam-1/inspection",
            "spBv1.0/g/NDATA/n",
        ],
        subscribes=["f5g/v1/#", f"$share/g/f5g/v1/{env.project}/#", "#"],
    )
    assert (accepted, granted) == (0, 0)
    await _rotate_and_revoke(env, issued)
    cid = issued["credential"]["id"]
    assert await _audited(env, cid) == [
        "credential.issue",
        "credential.rotate",
        "credential.revoke",
    ]


# ------------------------------------------------------------------ Sparkplug B


def _spb(seq: int, value: float, birth: bool) -> bytes:
    p = spb.Payload(timestamp=int(time.time() * 1000), seq=seq)
    if birth:
        p.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
        p.metrics.add(
            name=b"Spindle/Temp", alias=1, datatype=spb.DataType.Double, double_value=value
        )
    else:
        p.metrics.add(alias=1, double_value=value)
    return p.SerializeToString()


async def test_sparkplug_edge_node_onboarded_through_the_api_alone(env: Env) -> None:
    group = f"plant-{uuid.uuid4().hex[:6]}"
    issued = await _issue(env, type="sparkplug", group=group, node="cell7")
    assert issued["credential"]["project_id"] == group
    node = await _connected(env, issued)
    try:
        assert await asyncio.to_thread(node.subscribe, f"spBv1.0/{group}/NCMD/cell7") == 1
        assert await asyncio.to_thread(node.subscribe, "spBv1.0/STATE/+") == 1
        births = f"spBv1.0/{group}/NBIRTH/cell7"
        assert await asyncio.to_thread(node.publish, births, _spb(0, 20.0, True)) == 0
        for seq in range(1, 4):
            data = _spb(seq, 20.0 + seq, False)
            assert await asyncio.to_thread(node.publish, f"spBv1.0/{group}/NDATA/cell7", data) == 0

        async def stored() -> bool:
            n = await scalar(
                env.url,
                "SELECT count(*) FROM telemetry WHERE project_id = $1 AND metric = 'Spindle/Temp'",
                group,
            )
            return int(n) >= 4

        await wait_until(stored, 20)
    finally:
        await asyncio.to_thread(node.close)
    accepted, granted = await _attack(
        env,
        issued,
        publishes=[
            f"spBv1.0/{group}/NDATA/cell8",  # another node of its group
            f"spBv1.0/{group}/NCMD/cell7",  # a command to itself
            "spBv1.0/other/NDATA/cell7",
            "spBv1.0/STATE/host",  # posing as the primary host
            f"f5g/v1/{group}/machine/cell7/telemetry",
        ],
        subscribes=[f"spBv1.0/{group}/#", f"spBv1.0/{group}/NCMD/cell8", "$share/g/spBv1.0/#"],
    )
    assert (accepted, granted) == (0, 0)
    await _rotate_and_revoke(env, issued)


# ------------------------------------------------------------------ VDA 5050


def _agv_state(header: int) -> bytes:
    return json.dumps(
        {
            "headerId": header,
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "version": "2.0.0",
            "manufacturer": "Acme",
            "serialNumber": "AGV-9",
            "orderId": "o1",
            "orderUpdateId": 0,
            "lastNodeId": "n1",
            "lastNodeSequenceId": 1,
            "nodeStates": [],
            "edgeStates": [],
            "driving": True,
            "operatingMode": "AUTOMATIC",
            "actionStates": [],
            "batteryState": {"batteryCharge": 80.0, "charging": False},
            "errors": [],
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }
    ).encode()


async def test_vda5050_agv_onboarded_through_the_api_alone(env: Env) -> None:
    issued = await _issue(env, type="vda5050", manufacturer="Acme", serial="AGV-9")
    assert issued["credential"]["project_id"] == env.project
    base = "uagv/v2/Acme/AGV-9"
    agv = await _connected(env, issued)
    try:
        assert await asyncio.to_thread(agv.subscribe, f"{base}/order") == 1
        assert await asyncio.to_thread(agv.subscribe, f"{base}/instantActions") == 1
        for header in range(3):
            assert await asyncio.to_thread(agv.publish, f"{base}/state", _agv_state(header)) == 0

        async def stored() -> bool:
            n = await scalar(
                env.url, "SELECT count(*) FROM agv_status WHERE project_id = $1", env.project
            )
            return int(n) == 3

        await wait_until(stored, 20)
    finally:
        await asyncio.to_thread(agv.close)
    accepted, granted = await _attack(
        env,
        issued,
        publishes=[
            "uagv/v2/Acme/AGV-8/state",  # another AGV
            f"{base}/order",  # an order to itself, as a master control would send
            f"{base}/instantActions",
            "uagv/v2/Other/AGV-9/state",
        ],
        subscribes=["uagv/#", "uagv/v2/Acme/AGV-8/order", f"{base}/state"],
    )
    assert (accepted, granted) == (0, 0)
    await _rotate_and_revoke(env, issued)


# ------------------------------------------------------------------ alarm reader


async def test_alarm_reader_reads_one_projects_alarms_and_publishes_nothing(env: Env) -> None:
    issued = await _issue(env, type="alarms", project=env.project, name="andon-1")
    assert issued["grants"] == {
        "publish": [],
        "subscribe": [f"f5g/v1/{env.project}/alarms/#"],
    }
    board = await _connected(env, issued)
    try:
        assert await asyncio.to_thread(board.subscribe, f"f5g/v1/{env.project}/alarms/#") == 1
        # A rules-like publisher (the rules service account) raises one alarm here and one
        # in another project; the board receives exactly the first.
        creds = env.broker_auth.service_credentials("rules")
        pub = Probe(
            env.broker.port, creds.username, creds.password, f"rules-{uuid.uuid4().hex[:6]}"
        )
        assert await asyncio.to_thread(pub.connect) == 0
        try:
            mine = f"f5g/v1/{env.project}/alarms/camera/cam-1/defect_rate"
            theirs = "f5g/v1/elsewhere/alarms/camera/cam-1/defect_rate"
            assert await asyncio.to_thread(pub.publish, mine, b"{}") == 0
            assert await asyncio.to_thread(pub.publish, theirs, b"{}") == 0

            async def got() -> bool:
                return mine in board.received

            await wait_until(got, 10)
        finally:
            await asyncio.to_thread(pub.close)
        assert theirs not in board.received
    finally:
        await asyncio.to_thread(board.close)
    accepted, granted = await _attack(
        env,
        issued,
        publishes=[
            f"f5g/v1/{env.project}/alarms/camera/cam-1/defect_rate",  # a forged alarm
            f"f5g/v1/{env.project}/camera/cam-1/inspection",
        ],
        subscribes=["f5g/v1/elsewhere/alarms/#", f"f5g/v1/{env.project}/#", "#"],
    )
    assert (accepted, granted) == (0, 0)
    await _rotate_and_revoke(env, issued)


# ------------------------------------------------------------------ the API side


async def test_credential_requests_are_checked_and_listed_without_secrets(env: Env) -> None:
    c = env.c
    for body, status in (
        ({"type": "native", "project": env.project, "kind": "alarms", "device": "d"}, 422),
        ({"type": "native", "project": env.project, "kind": "cam", "device": "a/b"}, 422),
        ({"type": "sparkplug", "group": "g"}, 422),
        ({"type": "modbus", "project": "p"}, 422),
        ({"type": "alarms", "project": env.project, "name": "x", "extra": 1}, 422),
    ):
        r = await c.post("/api/v1/credentials", json=body, headers=auth(BOOT))
        assert r.status_code == status, (body, r.text)
    issued = await _issue(env, type="alarms", project=env.project, name="board-list")
    dup = await c.post(
        "/api/v1/credentials",
        json={"type": "alarms", "project": env.project, "name": "board-list"},
        headers=auth(BOOT),
    )
    assert dup.status_code == 409
    listed = await c.get("/api/v1/credentials", params={"project": env.project}, headers=auth(BOOT))
    assert listed.status_code == 200
    assert issued["credential"]["id"] in {i["id"] for i in listed.json()["items"]}
    assert issued["password"] not in listed.text
    one = await c.get(f"/api/v1/credentials/{issued['credential']['id']}", headers=auth(BOOT))
    assert one.status_code == 200
    assert issued["password"] not in one.text
    # Scopes: an operator may not issue; an admin of another project sees none of it.
    ops = await c.post("/api/v1/keys", json={"name": "ops", "scope": "operate"}, headers=auth(BOOT))
    other = await c.post(
        "/api/v1/keys",
        json={"name": "adm-x", "scope": "admin", "projects": ["x"]},
        headers=auth(BOOT),
    )
    op_token, other_token = ops.json()["token"], other.json()["token"]
    body = {"type": "alarms", "project": env.project, "name": "sneaky"}
    assert (
        await c.post("/api/v1/credentials", json=body, headers=auth(op_token))
    ).status_code == 403
    assert (
        await c.post("/api/v1/credentials", json=body, headers=auth(other_token))
    ).status_code == 403
    cid = issued["credential"]["id"]
    for path in (f"/api/v1/credentials/{cid}",):
        assert (await c.get(path, headers=auth(other_token))).status_code == 404
    for action in ("rotate", "revoke"):
        r = await c.post(f"/api/v1/credentials/{cid}/{action}", headers=auth(other_token))
        assert r.status_code == 404
    # The database holds no password at all.
    conn = await asyncpg.connect(db.asyncpg_dsn(env.url))
    try:
        dump = json.dumps(
            [dict(r) for r in await conn.fetch("SELECT * FROM broker_credentials")], default=str
        )
        trail = json.dumps(
            [dict(r) for r in await conn.fetch("SELECT * FROM audit_events")], default=str
        )
    finally:
        await conn.close()
    assert issued["password"] not in dump
    assert issued["password"] not in trail


async def test_without_a_broker_configured_credentials_answer_503(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    settings = make_settings(url, 1883, api={"rollup_interval_s": 0, "bootstrap_key": BOOT})
    async with client(settings) as (_, c):
        r = await c.post(
            "/api/v1/credentials",
            json={"type": "alarms", "project": "p1", "name": "b"},
            headers=auth(BOOT),
        )
    assert r.status_code == 503
    assert "F5G_API__BROKER_AUTH_DIR" in r.json()["error"]["message"]
    assert int(await scalar(url, "SELECT count(*) FROM broker_credentials")) == 0


async def test_without_a_shared_directory_the_api_applies_through_control_alone(
    env: Env, api_url: tuple[str, str]
) -> None:
    """Kubernetes: the API has only the broker's admin account. The credential works at
    once and its revocation is refused live; an unreachable broker changes nothing."""
    admin = json.loads(env.broker_auth.registry_file.read_text())["admin"]["password"]
    base = {"rollup_interval_s": 0, "key_cache_s": 0, "broker_admin_password": admin}
    settings = make_settings(api_url[1], env.broker.port, api=base)
    async with client(settings) as (_, c):
        r = await c.post(
            "/api/v1/credentials",
            json={"type": "alarms", "project": env.project, "name": "remote-board"},
            headers=auth(BOOT),
        )
        assert r.status_code == 201, r.text
        issued = r.json()
        board = await _connected(env, issued)
        try:
            topic = f"f5g/v1/{env.project}/alarms/#"
            assert await asyncio.to_thread(board.subscribe, topic) == 1
            started = time.monotonic()
            cid = issued["credential"]["id"]
            r = await c.post(f"/api/v1/credentials/{cid}/revoke", headers=auth(BOOT))
            assert r.status_code == 200, r.text
            assert await asyncio.to_thread(board.dropped.wait, REVOKE_WITHIN_S)
            assert time.monotonic() - started < REVOKE_WITHIN_S
        finally:
            await asyncio.to_thread(board.close)
    # The shared registry never heard of it: the broker's own file is the copy.
    assert "andon/" + env.project + "/remote-board" not in env.broker_auth.registry_file.read_text()
    dead = make_settings(api_url[1], free_port(), api=base)
    before = int(await scalar(env.url, "SELECT count(*) FROM broker_credentials"))
    async with client(dead) as (_, c):
        r = await c.post(
            "/api/v1/credentials",
            json={"type": "alarms", "project": env.project, "name": "nowhere"},
            headers=auth(BOOT),
        )
    assert r.status_code == 503, r.text
    assert int(await scalar(env.url, "SELECT count(*) FROM broker_credentials")) == before


def test_the_local_stack_gives_the_api_alone_the_account_directory(tmp_path: Path) -> None:
    from f5gdev.devstack.stack_accounts import service_env

    broker_auth = BrokerAuth(tmp_path / "auth")
    owner = "postgresql://factory5g@127.0.0.1:55432/factory5g"
    envs = {s: service_env(s, broker_auth, None, owner) for s in ("ingest", "rules", "api")}
    assert envs["api"]["F5G_API__BROKER_AUTH_DIR"] == str(broker_auth.directory)
    assert all("F5G_API__BROKER_AUTH_DIR" not in envs[s] for s in ("ingest", "rules"))
