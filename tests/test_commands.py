"""Commands to native devices end to end: the API, the commander, a real broker and database.

The devices are paho-mqtt MQTT v5 clients that read the command's correlation data and
response topic and answer like the device guide says. Every test counts what the devices
received, so "nothing sent" and "never sent twice" are measured, not assumed.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from f5gdev.devstack.servers import Mosquitto
from services.api.commands.models import Command
from services.commands.service import Commander
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.protocols.adapters.native import REPLY, NativeAdapter
from services.protocols.commands import announce_filter
from tests.conftest import make_settings
from tests.test_api_support import auth, client, make_keys

DEADLINE_S = 30.0


class Device:
    """A native device: subscribes to its cmd topics and answers each command.

    `answer(command) -> list of statuses` decides the replies; None: never answer."""

    def __init__(
        self,
        port: int,
        project: str,
        kind: str,
        device: str,
        answer: Callable[[dict[str, Any]], list[str]] | None = lambda _c: ["accepted", "completed"],
        clean_start: bool = True,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.project, self.kind, self.device = project, kind, device
        self.answer = answer
        self.received: list[dict[str, Any]] = []
        self.props: list[Properties] = []
        self.flags: list[tuple[int, bool]] = []
        self.answer_this = True
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # A provisioned device connects with its user name as client id.
            client_id=credentials[0] if credentials else f"dev-{device}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if credentials is not None:
            self.client.username_pw_set(*credentials)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.clean_start = clean_start
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean_start else 600
        self.client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
        self.client.loop_start()

    @property
    def cmd_filter(self) -> str:
        return f"f5g/v1/{self.project}/{self.kind}/{self.device}/cmd/#"

    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(self.cmd_filter, qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:  # not the platform's: kept to be counted, not answered
            body = {"id": None, "raw": msg.payload}
            self.answer_this = False
        else:
            self.answer_this = True
        with self.lock:
            self.received.append({**body, "topic": msg.topic})
            self.props.append(msg.properties)  # type: ignore[arg-type]
            self.flags.append((msg.qos, msg.retain))
        if self.answer is None or not self.answer_this:
            return
        for status in self.answer(body):
            self.reply(
                msg.properties.ResponseTopic,  # type: ignore[union-attr]
                msg.properties.CorrelationData,  # type: ignore[union-attr]
                {"status": status, "message": f"{status} by {self.device}"},
            )

    def reply(self, topic: str, correlation: bytes | None, body: dict[str, Any]) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            props.CorrelationData = correlation
        self.client.publish(topic, orjson.dumps(body), qos=1, properties=props)

    def ids(self) -> list[str]:
        with self.lock:
            return [r["id"] for r in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def wait_for(cond: Callable[[], Any], within: float = DEADLINE_S, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.05)


async def add_devices(url: str, rows: list[tuple[str, str, str, bool]]) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.executemany(
            "INSERT INTO devices (project_id, device_id, kind, online) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (project_id, device_id) DO UPDATE SET online = excluded.online",
            [(p, d, k, o) for p, k, d, o in rows],
        )
    finally:
        await conn.close()


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def command_settings(url: str, port: int, client_id: str = "cmd-test-0", **cmd: Any) -> Settings:
    return make_settings(
        url,
        port,
        api={"rollup_interval_s": 0, "key_cache_s": 0, "rate_limit_per_s": 0},
        commands={"metrics_port": 0, "client_id": client_id, "poll_s": 0.5, **cmd},
    )


@asynccontextmanager
async def commander(settings: Settings) -> AsyncIterator[Commander]:
    svc = Commander(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.connected.wait(), DEADLINE_S)
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


class Platform:
    def __init__(self, url: str, api: httpx.AsyncClient, admin: str, operator: str) -> None:
        self.url, self.api, self.admin, self.operator = url, api, admin, operator

    async def allow(self, project: str, kind: str, name: str) -> None:
        r = await self.api.put(
            f"/api/v1/projects/{project}/command-allowlist/{kind}/{name}", headers=auth(self.admin)
        )
        assert r.status_code == 200, r.text

    async def send(self, project: str, device: str, **body: Any) -> httpx.Response:
        return await self.api.post(
            f"/api/v1/projects/{project}/devices/{device}/commands",
            json=body,
            headers=auth(self.operator),
        )

    async def get(self, project: str, command_id: str) -> dict[str, Any]:
        r = await self.api.get(
            f"/api/v1/projects/{project}/commands/{command_id}", headers=auth(self.operator)
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def state_is(self, project: str, command_id: str, *states: str) -> dict[str, Any] | None:
        got = await self.get(project, command_id)
        return got if got["state"] in states else None


@asynccontextmanager
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    keys = await make_keys(settings.database.url)
    async with client(settings) as (_app, c):
        yield Platform(settings.database.url, c, keys.admin, keys.operate_p1)


@pytest.fixture(scope="module")
def url(new_database: Callable[..., str]) -> str:
    return new_database()


# ------------------------------------------------------------------------------ native


async def test_native_command_accepted_then_completed(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "n1", True)])
    settings = command_settings(url, broker.port)
    seen: list[dict[str, Any]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda _c, _u, m: seen.append(orjson.loads(m.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe(announce_filter("f5g/v1", "p1"), qos=1)
    watcher.loop_start()
    device = Device(broker.port, "p1", "press", "n1")
    try:
        await wait_for(device.subscribed.is_set, what="device subscribed")
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "stop")
            r = await pf.send("p1", "n1", name="stop", params={"reason": "test"}, timeout_s=20)
            assert r.status_code == 202, r.text
            cmd = r.json()
            assert cmd["state"] == "queued"
            assert cmd["actor"] == "operator-p1"
            done = await wait_for(
                lambda: pf.state_is("p1", cmd["id"], "completed"), what="completed"
            )
            history = [(e["state"], e["actor"]) for e in done["history"]]
            assert history == [
                ("queued", "operator-p1"),
                ("sent", "cmd-test-0"),
                ("accepted", "device:n1"),
                ("completed", "device:n1"),
            ]
            assert done["message"] == "completed by n1"
            assert device.ids() == [cmd["id"]]
            props = device.props[0]
            assert props.CorrelationData == cmd["id"].encode()  # type: ignore[attr-defined]
            assert props.ResponseTopic == "f5g/v1/p1/press/n1/reply"  # type: ignore[attr-defined]
            assert 0 < props.MessageExpiryInterval <= 20  # type: ignore[attr-defined]
            assert device.flags == [(1, False)]  # QoS 1, never retained
            assert device.received[0]["topic"] == "f5g/v1/p1/press/n1/cmd/stop"
            assert device.received[0]["params"] == {"reason": "test"}
            await wait_for(lambda: len(seen) >= 4, what="four announcements")
            assert [a["state"] for a in seen if a["command_id"] == cmd["id"]] == [
                "queued",
                "sent",
                "accepted",
                "completed",
            ]
            listed = await pf.api.get(
                "/api/v1/projects/p1/devices/n1/commands", headers=auth(pf.operator)
            )
            assert [c["id"] for c in listed.json()["items"]] == [cmd["id"]]
    finally:
        device.close()
        watcher.loop_stop()
        watcher.disconnect()


async def test_the_queued_answer_is_what_the_response_model_writes(
    url: str, broker: Mosquitto
) -> None:
    """The POST writes its row with orjson itself; it must be the document the `Command`
    model would have written, and what GET answers for the same command (no commander
    runs here, so the command stays queued)."""
    await add_devices(url, [("p1", "press", "shape", True)])
    settings = command_settings(url, broker.port)
    async with platform(settings) as pf:
        await pf.allow("p1", "press", "ping")
        params = {"speed": 1.5, "n": 3, "names": ["a", "b"], "on": True, "none": None}
        r = await pf.send("p1", "shape", name="ping", params=params)
        assert r.status_code == 202, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert Command.model_validate(body).model_dump(mode="json") == body
        assert body["params"] == params
        assert body["state"] == "queued"
        got = await pf.get("p1", body["id"])
        assert {k: v for k, v in got.items() if k != "history"} == body


async def test_not_on_allow_list_is_refused_and_nothing_sent(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "n2", True)])
    settings = command_settings(url, broker.port)
    device = Device(broker.port, "p1", "press", "n2")
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            r = await pf.send("p1", "n2", name="selfdestruct")
            assert r.status_code == 403
            assert "not on the allow-list" in r.json()["error"]["message"]
            # The allow-list is per kind: `ping` is allowed for presses, not for AGVs.
            await add_devices(url, [("p1", "agv", "a9", True)])
            r = await pf.send("p1", "a9", name="ping")
            assert r.status_code == 403
            bad = await pf.send("p1", "n2", name="ping", params=[1])
            assert bad.status_code == 422
            # What jsonb cannot store is a 422 naming it, not a 500 from the database.
            for params in ({"\x00": None}, {"v": "a\x00b"}, {"v": [[{"k": "\x00"}]]}):
                bad = await pf.send("p1", "n2", name="ping", params=params)
                assert bad.status_code == 422, bad.text
                assert "NUL" in bad.text
            deep: object = 1
            for _ in range(40):
                deep = [deep]
            bad = await pf.send("p1", "n2", name="ping", params={"v": deep})
            assert bad.status_code == 422, bad.text
            assert "nested" in bad.text
            rows = await fetch(url, "SELECT count(*) FROM commands WHERE device_id IN ('n2','a9')")
            assert rows[0][0] == 0
            # An allowed command afterwards is the only one the device ever receives.
            r = await pf.send("p1", "n2", name="ping")
            assert r.status_code == 202
            await wait_for(lambda: pf.state_is("p1", r.json()["id"], "completed"))
            assert device.ids() == [r.json()["id"]]
            # An operator key cannot change the allow-list; admins of other projects see none.
            r = await pf.api.put(
                "/api/v1/projects/p1/command-allowlist/press/x", headers=auth(pf.operator)
            )
            assert r.status_code == 403
    finally:
        device.close()


async def test_rate_limit_answers_429_and_sends_nothing_more(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "n3", True)])
    settings = command_settings(url, broker.port, rate_per_device=3, rate_window_s=600)
    device = Device(broker.port, "p1", "press", "n3")
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            results = await asyncio.gather(*(pf.send("p1", "n3", name="ping") for _ in range(8)))
            codes = sorted(r.status_code for r in results)
            assert codes == [202] * 3 + [429] * 5
            refused = next(r for r in results if r.status_code == 429)
            assert "limit 3" in refused.json()["error"]["message"]
            assert int(refused.headers["Retry-After"]) >= 1
            accepted = [r.json()["id"] for r in results if r.status_code == 202]
            for cid in accepted:
                await wait_for(lambda cid=cid: pf.state_is("p1", cid, "completed"))
            assert sorted(device.ids()) == sorted(accepted)
    finally:
        device.close()


async def test_offline_device_refused_or_queued_until_expired(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "off1", False)])
    settings = command_settings(url, broker.port)
    device = Device(broker.port, "p1", "press", "off1")
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            r = await pf.send("p1", "off1", name="ping")
            assert r.status_code == 409
            assert "offline" in r.json()["error"]["message"]
            r = await pf.send("p1", "off1", name="ping", queue_until_deadline=True, timeout_s=2)
            assert r.status_code == 202
            done = await wait_for(lambda: pf.state_is("p1", r.json()["id"], "expired"))
            assert [e["state"] for e in done["history"]] == ["queued", "expired"]
            assert device.ids() == []  # the registry says offline: never sent
            # Back online before the deadline: the waiting command goes out.
            r = await pf.send("p1", "off1", name="ping", queue_until_deadline=True, timeout_s=20)
            await add_devices(url, [("p1", "press", "off1", True)])
            await wait_for(lambda: pf.state_is("p1", r.json()["id"], "completed"))
            assert device.ids() == [r.json()["id"]]
    finally:
        device.close()


async def test_silent_device_expires_at_the_deadline(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "mute", True)])
    settings = command_settings(url, broker.port)
    device = Device(broker.port, "p1", "press", "mute", answer=lambda _c: ["accepted"])
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            r = await pf.send("p1", "mute", name="ping", timeout_s=2)
            t0 = time.monotonic()
            done = await wait_for(lambda: pf.state_is("p1", r.json()["id"], "expired"))
            assert time.monotonic() - t0 >= 1.0
            assert [e["state"] for e in done["history"]] == [
                "queued",
                "sent",
                "accepted",
                "expired",
            ]
            assert "accepted" in done["message"]
            # A late outcome changes nothing.
            device.reply(
                "f5g/v1/p1/press/mute/reply", r.json()["id"].encode(), {"status": "completed"}
            )
            r2 = await pf.send("p1", "mute", name="ping", timeout_s=20)
            await wait_for(lambda: pf.state_is("p1", r2.json()["id"], "accepted"))
            assert (await pf.get("p1", r.json()["id"]))["state"] == "expired"
    finally:
        device.close()


async def test_unknown_correlation_data_is_dead_lettered(url: str, broker: Mosquitto) -> None:
    await add_devices(url, [("p1", "press", "liar", True), ("p1", "press", "other", True)])
    settings = command_settings(url, broker.port)
    liar = Device(broker.port, "p1", "press", "liar", answer=None)
    other = Device(broker.port, "p1", "press", "other", answer=None)
    try:
        await wait_for(lambda: liar.subscribed.is_set() and other.subscribed.is_set())
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            r = await pf.send("p1", "other", name="ping")
            theirs = r.json()["id"]
            await wait_for(lambda: other.ids() == [theirs])
            topic = "f5g/v1/p1/press/liar/reply"
            liar.reply(topic, str(uuid.uuid4()).encode(), {"status": "completed"})
            liar.reply(topic, None, {"status": "completed"})
            liar.reply(topic, theirs.encode(), {"status": "completed"})  # another's command
            liar.reply(topic, b"\xff\x00garbage", {"status": "completed"})
            rows = await wait_for(
                lambda: fetch_dead(url, "liar", 4), what="four dead letters of the liar"
            )
            assert {r["reason"] for r in rows} == {"unknown_command"}
            assert all(r["project_id"] == "p1" and r["topic"] == topic for r in rows)
            details = " | ".join(r["detail"] for r in rows)
            assert "without correlation data" in details
            assert "names no command of device p1/liar" in details
            # Nothing else changed: the other device's command is still only sent.
            assert (await pf.get("p1", theirs))["state"] == "sent"
            # A well-formed reply by the right device still counts after all that.
            other.reply("f5g/v1/p1/press/other/reply", theirs.encode(), {"status": "failed"})
            await wait_for(lambda: pf.state_is("p1", theirs, "failed"))
            bad = await fetch(
                url, "SELECT reason FROM dead_letters WHERE device_id = 'other' ORDER BY 1"
            )
            assert bad == []
            other.reply("f5g/v1/p1/press/other/reply", theirs.encode(), {"status": "maybe"})
            rows = await wait_for(lambda: fetch_dead(url, "other", 1))
            assert rows[0]["reason"] == "schema"
    finally:
        liar.close()
        other.close()


async def fetch_dead(url: str, device: str, n: int) -> list[asyncpg.Record] | None:
    rows = await fetch(
        url,
        "SELECT reason, detail, project_id, topic FROM dead_letters WHERE device_id = $1",
        device,
    )
    return rows if len(rows) >= n else None


async def test_broker_restart_between_send_and_reply(
    url: str, new_broker: Callable[[], Mosquitto]
) -> None:
    broker = new_broker()
    await add_devices(url, [("p1", "press", "rb", True)])
    settings = command_settings(url, broker.port, client_id="cmd-restart")
    device = Device(broker.port, "p1", "press", "rb", answer=None, clean_start=False)
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings) as svc:
            await pf.allow("p1", "press", "ping")
            r = await pf.send("p1", "rb", name="ping", timeout_s=60)
            cid = r.json()["id"]
            await wait_for(lambda: device.ids() == [cid])
            await wait_for(lambda: pf.state_is("p1", cid, "sent"))
            await asyncio.to_thread(broker.restart)
            # The device answers as soon as it is back, possibly before the commander is:
            # the commander's persistent session holds the reply for it.
            await wait_for(device.client.is_connected, what="device reconnected")
            device.reply("f5g/v1/p1/press/rb/reply", cid.encode(), {"status": "completed"})
            done = await wait_for(lambda: pf.state_is("p1", cid, "completed"))
            assert [e["state"] for e in done["history"]] == ["queued", "sent", "completed"]
            assert svc.connected.is_set()
    finally:
        device.close()


async def test_two_commanders_never_send_a_command_twice(url: str, broker: Mosquitto) -> None:
    n_devices, per_device = 20, 10
    names = [f"tw{i}" for i in range(n_devices)]
    await add_devices(url, [("p1", "press", d, True) for d in names])
    a = command_settings(url, broker.port, client_id="cmd-a", rate_per_device=per_device)
    b = command_settings(url, broker.port, client_id="cmd-b", rate_per_device=per_device)
    devices = [Device(broker.port, "p1", "press", d) for d in names]
    try:
        await wait_for(lambda: all(d.subscribed.is_set() for d in devices))
        async with platform(a) as pf, commander(a), commander(b):
            await pf.allow("p1", "press", "ping")
            sent: list[str] = []
            for _ in range(per_device):
                rs = await asyncio.gather(*(pf.send("p1", d, name="ping") for d in names))
                assert all(r.status_code == 202 for r in rs), [r.text for r in rs]
                sent += [r.json()["id"] for r in rs]
            await wait_for(lambda: all_done(url, sent), within=120, what="every command completed")
            received = [cid for d in devices for cid in d.ids()]
            duplicates = len(received) - len(set(received))
            assert duplicates == 0, f"{duplicates} of {len(sent)} commands sent twice"
            assert sorted(received) == sorted(sent)
            senders = await fetch(
                url,
                "SELECT actor, count(*) FROM command_events WHERE state = 'sent' "
                "AND command_id = ANY($1::uuid[]) GROUP BY actor",
                sent,
            )
            assert sum(r[1] for r in senders) == len(sent)
            rows = await fetch(
                url, "SELECT max(sends) FROM commands WHERE id = ANY($1::uuid[])", sent
            )
            assert rows[0][0] == 1
    finally:
        for d in devices:
            d.close()


async def all_done(url: str, ids: list[str]) -> bool:
    rows = await fetch(
        url,
        "SELECT count(*) FROM commands WHERE id = ANY($1::uuid[]) AND state = 'completed'",
        ids,
    )
    return bool(rows[0][0] == len(ids))


# ------------------------------------------------------------------------------ ingest


def test_ingest_ignores_the_reply_level() -> None:
    """Replies go to the commander: ingest stores nothing, dead-letters nothing, acks it."""
    from datetime import UTC, datetime

    from services.core.settings import IngestSettings
    from services.protocols.batch import Batch
    from services.protocols.pipeline import Pipeline

    adapter = NativeAdapter("f5g/v1")
    topic = "f5g/v1/p1/press/n1/reply"
    assert adapter.topic(topic).stream == REPLY
    now = datetime.now(UTC)
    result = adapter.decode(topic, b'{"status":"completed"}', now)
    assert (result.items, result.events, result.rejected) == ([], [], [])
    pipeline = Pipeline(IngestSettings(), [adapter])
    batch = Batch(1)
    pipeline.fill(batch, topic, b'{"status":"completed"}', now, 7, 1, False)
    pipeline.fill(batch, "f5g/v1/p1/press/n1/replies", b"{}", now, 8, 1, False)
    assert batch.mids == [7, 8]  # both acknowledged with the batch
    assert batch.rows == {}
    # Only the look-alike level is an unknown stream; the reply level is not.
    assert [row[2] for row in batch.dead] == ["unknown_stream"]


async def test_hostile_reply_is_dead_lettered_and_the_commander_carries_on(
    url: str, broker: Mosquitto
) -> None:
    """JSON nested deeper than the decoder's recursion limit, as a reply and as a VDA 5050
    state: a dead letter (reply) or nothing (state), and later commands still complete."""
    await add_devices(url, [("p1", "press", "deep", True)])
    settings = command_settings(url, broker.port, client_id="cmd-deep")
    device = Device(broker.port, "p1", "press", "deep")
    nested = b'{"status":"completed","result":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001
    try:
        await wait_for(device.subscribed.is_set)
        async with platform(settings) as pf, commander(settings) as svc:
            await pf.allow("p1", "press", "ping")
            first = await pf.send("p1", "deep", name="ping", timeout_s=30)
            await wait_for(lambda: pf.state_is("p1", first.json()["id"], "completed"))
            device.reply("f5g/v1/p1/press/deep/reply", first.json()["id"].encode(), {})
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = first.json()["id"].encode()
            device.client.publish("f5g/v1/p1/press/deep/reply", nested, qos=1, properties=props)
            device.client.publish("uagv/v2/Deep/agv/state", b'{"a":' * 100_000, qos=1)
            rows = await wait_for(lambda: fetch_dead(url, "deep", 2), what="dead letters")
            assert {r["reason"] for r in rows} == {"schema"}
            r = await pf.send("p1", "deep", name="ping", timeout_s=30)
            await wait_for(lambda: pf.state_is("p1", r.json()["id"], "completed"))
            assert svc.health()[0]
    finally:
        device.close()
