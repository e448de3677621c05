"""The commander: sends queued commands to devices and records what becomes of them.

Everything it knows is in the database, so nothing is lost across a restart of the
commander or of the broker:

- **Send.** New commands wake the commander by the API's `queued` announcement on MQTT
  (published after the commit; no NOTIFY, which serialises commits, see
  services/api/commands/service.py) and, should one be missed, by a poll every `poll_s`.
  A batch of queued commands of online devices (or commands that asked to wait for their
  device) is claimed with `FOR UPDATE SKIP LOCKED`, published QoS 1 (never retained)
  through the services' own MQTT session, and marked `sent` once the broker's PUBACK is
  in, in the same transaction that holds the rows: a second commander skips them, so a
  command is never sent by two. Two batches may be in flight at once (`SENDERS`), claimed
  and published one after the other. A command whose PUBACK never came (the connection
  dropped) stays queued and is sent again: at least once, with the command id for the
  device to recognise a repeat.
- **Replies.** Devices answer on `{root}/{project}/{kind}/{device}/reply` with the command
  id as MQTT v5 correlation data. The commander's session is persistent (fixed client id,
  clean start off), so replies published while it or its connection was away are delivered
  when it is back; a reply is acknowledged only once its transition is committed. A reply
  whose correlation data names no command of that device is dead-lettered with reason
  `unknown_command`; one for a command that already moved on (a redelivery, or an outcome
  after the deadline) is counted and changes nothing.
- **Deadlines.** A scan every `poll_s` moves open commands past their deadline to
  `expired`.

Every transition is one `command_events` row (the audit trail, with its actor) and one
announcement on `{root}/{project}/commands/{kind}/{device}/{id}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import orjson

from services.commands.metrics import CommandsMetrics
from services.core import heap
from services.core.contracts import ContractError, Reason
from services.core.db import asyncpg_dsn
from services.core.metrics import MetricsServer, service_registry
from services.core.mqtt import Backoff, ConnectOptions, ProtocolError, Session
from services.core.mqtt.codec import NO_LOCAL, Properties
from services.core.runtime import cancel_and_wait, mqtt_connect_options, mqtt_endpoint, run_async
from services.core.settings import Settings
from services.protocols import deadletter
from services.protocols import sparkplug as spb
from services.protocols.adapters.vda5050 import Vda5050Adapter
from services.protocols.commands import (
    FINAL_STATES,
    REPLY_FROM,
    SPB_WRITE,
    VDA_ACTION_STATES,
    VDA_ORDER,
    MetricDef,
    announce_filter,
    announce_topic,
    announcement,
    command_payload,
    command_topic,
    decode_reply,
    decode_vda_state,
    parse_correlation,
    parse_reply_topic,
    reply_filter,
    reply_topic,
    spb_check,
    spb_matches,
    spb_payload,
    spb_reported,
    spb_topic,
    spb_written,
    vda_payload,
    vda_topic,
)

log = logging.getLogger("factory5g.commands")

QUEUED_MARK: Final = b'"state":"queued"'
RECEIVE_MAXIMUM: Final = 1000
# Batches in flight at once. A batch holds its rows (and its connection) until the broker
# acknowledged every message and the `sent` marks are committed; with one sender, commands
# queued meanwhile waited for that PUBACK round and WAL flush before their claim. Claims
# and publishing stay one at a time (`_claiming`), so a device gets its commands in order.
SENDERS: Final = 2
PUBACK_TIMEOUT_S: Final = 10.0
REPLY_BATCH: Final = 500
REBIRTH_INTERVAL_S: Final = 30.0
CORRELATION_DATA: Final = 0x09
RESPONSE_TOPIC: Final = 0x08
MESSAGE_EXPIRY: Final = 0x02

_HEADER = """
INSERT INTO command_headers (topic, header_id) VALUES ($1, 0)
ON CONFLICT (topic) DO UPDATE SET header_id = command_headers.header_id + 1
RETURNING header_id
"""
_TARGET = """
INSERT INTO command_targets (project_id, device_id, protocol, address, updated_at)
VALUES ($1, $2, $3, $4::jsonb, now())
ON CONFLICT (project_id, device_id) DO UPDATE
SET protocol = excluded.protocol, address = excluded.address, updated_at = now()
"""
_LOAD_TARGETS = "SELECT project_id, device_id, address FROM command_targets WHERE protocol = $1"
_LOAD_OPEN_SPB = """
SELECT id, project_id, device_id, params FROM commands
WHERE protocol = 'sparkplug' AND state IN ('queued', 'sent', 'accepted')
"""
_LOAD_OPEN_VDA = """
SELECT id, project_id, device_id, name, params->>'orderId' AS order_id, state
FROM commands WHERE protocol = 'vda5050' AND state IN ('queued', 'sent', 'accepted')
"""
_CLAIM = """
SELECT c.id, c.project_id, c.device_id, c.kind, c.name, c.protocol, c.params, c.deadline,
       c.created_at, c.actor
FROM commands c JOIN devices d ON d.project_id = c.project_id AND d.device_id = c.device_id
WHERE c.state = 'queued' AND c.deadline > now() AND d.online
ORDER BY c.created_at
LIMIT $1
FOR UPDATE OF c SKIP LOCKED
"""
_MARK_SENT = """
WITH s AS (
    UPDATE commands SET state = 'sent', sent_at = now(), updated_at = now(), sends = sends + 1
    WHERE id = ANY($1::uuid[]) AND state = 'queued'
    RETURNING id, project_id, device_id, sent_at
)
INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
SELECT id, project_id, device_id, sent_at, 'sent', $2, '{}'::jsonb FROM s
RETURNING command_id, ts
"""
_MARK_FAILED = """
WITH s AS (
    UPDATE commands SET state = 'failed', updated_at = now(), finished_at = now(),
                        message = $2
    WHERE id = $1 AND state = 'queued'
    RETURNING id, project_id, device_id, updated_at
)
INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
SELECT id, project_id, device_id, updated_at, 'failed', $3, jsonb_build_object('message', $2)
FROM s RETURNING ts
"""
_CURRENT = """
SELECT state FROM commands WHERE id = $1 AND project_id = $2 AND device_id = $3 FOR UPDATE
"""
_REPLY = """
UPDATE commands SET state = $2, updated_at = now(), message = coalesce($3, message),
    result = coalesce($4::jsonb, result),
    finished_at = CASE WHEN $2 IN ('rejected', 'completed', 'failed') THEN now() END
WHERE id = $1
RETURNING id, project_id, device_id, kind, name, protocol, message, updated_at
"""
_EVENT = """
INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""
# The transitions REPLY_FROM allows, as SQL rows (status, from state): constants only.
_REPLY_ALLOWED = ", ".join(
    f"('{status}', '{state}')" for status, states in REPLY_FROM.items() for state in states
)
# One statement for a batch of native replies, at most two per command in arrival order
# (`_apply_native` splits the batch into such rounds): lock the commands (waiting for a
# sender that still holds one, then judging it on what the sender committed, as `_CURRENT`
# does), move each by its first reply if allowed, then by its second if allowed from there,
# in one row update, and write one event per step taken. One row per command that exists:
# `t1`/`t2` are null for a reply the command was already past (stale).
#
# Why two at once: a device answers `accepted` and `completed` together, and both usually
# land in one batch. Applied one round each, they cost two locks, two row versions and two
# sets of index entries (`state` is in the partial indexes' predicates, so no update of a
# command is HOT); applied together, one of each. Every transition still has its event.
# (`step1` and `plan` are materialized: inlined, each use repeated the transition check.)
_REPLY_BATCH = f"""
WITH m AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::int[])
        AS m(id, project_id, device_id, s1, m1, r1, d1, s2, m2, r2, d2, i)
), cur AS (
    SELECT c.id, c.state, m.i FROM commands c
    JOIN m ON c.id = m.id AND c.project_id = m.project_id AND c.device_id = m.device_id
    ORDER BY c.id
    FOR UPDATE OF c
), step1 AS MATERIALIZED (
    SELECT cur.state, m.*,
           CASE WHEN (m.s1, cur.state) IN ({_REPLY_ALLOWED}) THEN m.s1 END AS t1
    FROM cur JOIN m ON m.i = cur.i
), plan AS MATERIALIZED (
    SELECT f.*,
           CASE WHEN (f.s2, coalesce(f.t1, f.state)) IN ({_REPLY_ALLOWED}) THEN f.s2 END AS t2
    FROM step1 f
), ok AS (
    UPDATE commands c SET state = coalesce(p.t2, p.t1), updated_at = now(),
        message = coalesce(CASE WHEN p.t2 IS NOT NULL THEN p.m2 END,
                           CASE WHEN p.t1 IS NOT NULL THEN p.m1 END, c.message),
        result = coalesce(CASE WHEN p.t2 IS NOT NULL THEN p.r2::jsonb END,
                          CASE WHEN p.t1 IS NOT NULL THEN p.r1::jsonb END, c.result),
        finished_at = CASE WHEN coalesce(p.t2, p.t1) IN ('rejected', 'completed', 'failed')
                           THEN now() END
    FROM plan p
    WHERE c.id = p.id AND coalesce(p.t2, p.t1) IS NOT NULL
    RETURNING c.id, c.project_id, c.device_id, c.kind, c.name, c.protocol, c.message,
              c.updated_at, p.i, p.t1, p.t2, p.d1, p.d2
), ev AS (
    INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
    SELECT ok.id, ok.project_id, ok.device_id, ok.updated_at, v.state,
           'device:' || ok.device_id, v.detail::jsonb
    FROM ok CROSS JOIN LATERAL (VALUES (1, ok.t1, ok.d1), (2, ok.t2, ok.d2))
        AS v(k, state, detail)
    WHERE v.state IS NOT NULL
    ORDER BY ok.i, v.k
)
SELECT cur.i, cur.state AS was, ok.id, ok.project_id, ok.device_id, ok.kind, ok.name,
       ok.protocol, ok.message, ok.updated_at, ok.t1, ok.t2
FROM cur LEFT JOIN ok ON ok.i = cur.i
"""
_ANNOUNCED = ("id", "project_id", "device_id", "kind", "name", "protocol", "message", "updated_at")
_EXPIRE = """
WITH due AS (
    SELECT id FROM commands
    WHERE state IN ('queued', 'sent', 'accepted') AND deadline <= now()
    ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED
), s AS (
    UPDATE commands c SET state = 'expired', updated_at = now(), finished_at = now(),
        message = 'no outcome by the deadline (' || c.state || ')'
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.project_id, c.device_id, c.kind, c.name, c.protocol, c.message,
              c.updated_at
), e AS (
    INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
    SELECT id, project_id, device_id, updated_at, 'expired', $2,
           jsonb_build_object('message', message)
    FROM s
)
SELECT * FROM s
"""
_DEAD = (
    f"INSERT INTO {deadletter.TABLE} ({', '.join(deadletter.COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(deadletter.COLUMNS)))})"
)


def _result_json(r: NativeReply | None) -> str | None:
    return orjson.dumps(r.result).decode() if r is not None and r.result is not None else None


def _detail_json(r: NativeReply | None) -> str | None:
    """The event's detail: the reply's message and result, if any."""
    if r is None:
        return None
    detail: dict[str, Any] = {"message": r.message} if r.message else {}
    if r.result is not None:
        detail["result"] = r.result
    return orjson.dumps(detail).decode()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query (a round trip per
    batch): the commander sets no session state, and asyncpg still rolls back a
    transaction left open."""


SpbKey = tuple[str, str, str | None]  # Sparkplug group, edge node, device (None: the node)


class UnsendableError(Exception):
    """A command that cannot become a message (it fails instead of waiting forever)."""


@dataclass
class Incoming:
    gen: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    props: Properties | None  # None: the property block was malformed
    received_at: datetime


@dataclass(frozen=True)
class NativeReply:
    """A native device's reply that parsed: what `_apply_native` records in bulk."""

    msg: Incoming
    cid: uuid.UUID
    project: str
    device: str
    status: str
    message: str | None
    result: dict[str, Any] | None


class Commander:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.commands
        self.root = settings.mqtt.topic_root
        self.announce_prefix = self.root + "/"
        self.actor = self.cfg.client_id
        self.metrics = CommandsMetrics(service_registry())
        self.wake = asyncio.Event()
        # Held by a sender from its claim until every message of the batch is handed to the
        # connection: batches are published in the order they were claimed.
        self._claiming = asyncio.Lock()
        # A sender is on its way to its claim and has not sent it yet: its snapshot will
        # see whatever woke another sender, which need not claim (an empty claim is a
        # transaction of three round trips for nothing, at every wake of a quiet system).
        self._claim_coming = False
        self.replies: asyncio.Queue[Incoming] = asyncio.Queue()
        self.db_ok = False
        self._gen = 0
        self._deferred: list[tuple[Any, str, datetime]] = []
        ing = settings.ingest
        self.vda = Vda5050Adapter(
            ing.vda5050_interface, ing.vda5050_projects, ing.vda5050_default_project
        )
        self.vda_prefix = f"{ing.vda5050_interface}/v2/"
        # (project, device) -> (manufacturer, serialNumber), learnt from the AGVs' states.
        self.vda_targets: dict[tuple[str, str], tuple[str, str]] = {}
        # (project, device) -> {actionId or "order:" + orderId: command id} of open commands,
        # and the state last recorded per command (a state repeats an action many times).
        self.vda_open: dict[tuple[str, str], dict[str, str]] = {}
        self.vda_recorded: dict[str, str] = {}
        # Sparkplug B, per (group, node, device or None): the birth certificate's metrics
        # (name -> (datatype, alias)), alias -> name, and the open writes
        # (command id -> metric name -> written value) that a DATA message must report.
        self.spb_births: dict[SpbKey, dict[str, MetricDef]] = {}
        self.spb_aliases: dict[SpbKey, dict[int, str]] = {}
        self.spb_open: dict[SpbKey, dict[str, dict[str, float | str]]] = {}
        self.rebirths: dict[tuple[str, str], float] = {}
        self.session = Session(
            mqtt_endpoint(settings),
            self._options,
            [
                (reply_filter(self.root), 1),
                # The API's `queued` announcements: a wake-up, QoS 0, nothing to store.
                # No Local: the commander's own announcements (sent, accepted, completed,
                # ...: three of every command's four) are not sent back to it.
                (announce_filter(self.root), NO_LOCAL),
                (f"{self.vda_prefix}+/+/state", 1),
                (f"{spb.NAMESPACE}/+/NBIRTH/+", 1),
                (f"{spb.NAMESPACE}/+/DBIRTH/+/+", 1),
                (f"{spb.NAMESPACE}/+/NDATA/+", 1),
                (f"{spb.NAMESPACE}/+/DDATA/+/+", 1),
            ],
            self._on_publish,
            Backoff(0.25, 2.0),
            refused_is_fatal=True,
            on_generation=self._new_generation,
            on_up=self._up,
            on_down=self._down,
            keep_properties=True,
        )
        self.connected = self.session.up

    # ----------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        pool = await asyncpg.create_pool(
            asyncpg_dsn(s.database.url),
            min_size=1,
            max_size=SENDERS + 2,  # the senders, the reply worker, the expiry scan
            timeout=s.database.connect_timeout_s,
            reset=_keep_session,
        )
        server = MetricsServer(
            self.cfg.metrics_host, self.cfg.metrics_port, self.health, self.metrics.registry
        )
        await server.start()
        try:
            await self._restore(pool)
            tasks = [
                asyncio.create_task(self.session.run(stop), name="commands-mqtt"),
                *(
                    asyncio.create_task(self._sender(pool, stop), name=f"commands-send-{i}")
                    for i in range(SENDERS)
                ),
                asyncio.create_task(self._reply_worker(pool), name="commands-replies"),
                asyncio.create_task(self._expiry(pool, stop), name="commands-expiry"),
            ]
            await stop.wait()
            for task in tasks:
                await cancel_and_wait(task)
        finally:
            await server.stop()
            await pool.close()
            self.metrics.mqtt_connected.set(0)

    async def _restore(self, pool: asyncpg.Pool) -> None:
        """What a previous run learnt and left open: VDA 5050 addresses and commands."""
        while True:
            try:
                async with pool.acquire() as conn:
                    targets = await conn.fetch(_LOAD_TARGETS, "vda5050")
                    open_ = await conn.fetch(_LOAD_OPEN_VDA)
                    spb_targets = await conn.fetch(_LOAD_TARGETS, "sparkplug")
                    spb_open = await conn.fetch(_LOAD_OPEN_SPB)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("loading open commands failed: %s; retrying", exc)
                await asyncio.sleep(self.cfg.poll_s)
        for t in targets:
            addr = orjson.loads(t["address"])
            self.vda_targets[(t["project_id"], t["device_id"])] = (
                addr["manufacturer"],
                addr["serialNumber"],
            )
        for row in open_:
            self._track_vda(row["project_id"], row["device_id"], str(row["id"]), row["name"],
                            row["order_id"])  # fmt: skip
            self.vda_recorded[str(row["id"])] = row["state"]
        by_device: dict[tuple[str, str], SpbKey] = {}
        for t in spb_targets:
            addr = orjson.loads(t["address"])
            node_key: SpbKey = (addr["group"], addr["node"], addr.get("device"))
            self._learn_birth(node_key, {k: (v[0], v[1]) for k, v in addr["metrics"].items()})
            by_device[(t["project_id"], t["device_id"])] = node_key
        for row in spb_open:
            found = by_device.get((row["project_id"], row["device_id"]))
            if found is not None:
                self._track_spb(found, str(row["id"]), orjson.loads(row["params"]))
        self.db_ok = True

    def _learn_birth(self, key: SpbKey, metrics: dict[str, MetricDef]) -> None:
        self.spb_births[key] = metrics
        self.spb_aliases[key] = {a: n for n, (_d, a) in metrics.items() if a is not None}

    def _track_spb(self, key: SpbKey, cid: str, params: dict[str, Any]) -> None:
        births = self.spb_births.get(key, {})
        pending = {
            name: spb_written(value, births[name][0])
            for name, value in params.get("metrics", {}).items()
            if name in births
        }
        if pending:
            self.spb_open.setdefault(key, {})[cid] = pending

    def _track_vda(
        self, project: str, device: str, cid: str, name: str, order_id: str | None
    ) -> None:
        key = f"order:{order_id}" if name == VDA_ORDER else cid
        self.vda_open.setdefault((project, device), {})[key] = cid

    def health(self) -> tuple[bool, dict[str, object]]:
        return self.connected.is_set() and self.db_ok, {
            "mqtt": self.connected.is_set(),
            "database": self.db_ok,
            "pending_replies": self.replies.qsize(),
        }

    # ----------------------------------------------------------------- MQTT

    def _options(self) -> ConnectOptions:
        return mqtt_connect_options(
            self.settings,
            self.cfg.client_id,
            clean_start=False,
            session_expiry_s=self.cfg.session_expiry_s,
            receive_maximum=RECEIVE_MAXIMUM,
        )

    def _new_generation(self, gen: int) -> None:
        self._gen = gen

    def _up(self) -> None:
        self.metrics.mqtt_connected.set(1)
        self.wake.set()  # send what queued up while disconnected

    def _down(self, was_up: bool) -> None:
        self.metrics.mqtt_connected.set(0)

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        if topic.startswith(self.announce_prefix) and "/commands/" in topic:
            if QUEUED_MARK in payload:
                self.wake.set()
            return
        props: Properties | None
        try:
            props = self.session.publish_properties()
        except ProtocolError:
            props = None
        self.replies.put_nowait(
            Incoming(self._gen, mid, qos, topic, payload, props, datetime.now(UTC))
        )

    def _announce(self, row: Any, state: str, at: datetime) -> None:
        topic = announce_topic(
            self.root, row["project_id"], row["kind"], row["device_id"], str(row["id"])
        )
        self.session.publish(topic, announcement(dict(row), state, at, self.actor), 1)
        self.metrics.transitions.labels(row["protocol"], state).inc()

    # ----------------------------------------------------------------- send

    async def _sender(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.cfg.poll_s)
            self.wake.clear()
            if not self.connected.is_set() or self._claim_coming:
                continue
            try:
                while await self._send_batch(pool) >= self.cfg.batch_max:
                    pass
                self.db_ok = True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.db_ok = False
                self.metrics.store_errors.inc()
                log.warning("sending commands failed: %s; retrying", exc)
                await asyncio.sleep(self.cfg.poll_s)

    async def _send_batch(self, pool: asyncpg.Pool) -> int:
        """Claim, publish and mark one batch; returns how many were claimed."""
        self._claim_coming = True
        try:
            return await self._claim_and_send(pool)
        except BaseException:
            self._claim_coming = False  # failed before its claim, perhaps: others claim
            raise

    async def _claim_and_send(self, pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn, conn.transaction():
            pending: list[tuple[asyncpg.Record, asyncio.Future[int]]] = []
            refused: list[tuple[asyncpg.Record, str]] = []
            async with self._claiming:
                self._claim_coming = False  # from here on, a wake-up may need a claim
                # SKIP LOCKED: the rows of a batch still in flight are not claimed again.
                rows = await conn.fetch(_CLAIM, self.cfg.batch_max)
                if not rows:
                    return 0
                for row in rows:
                    try:
                        fut = await self._publish_command(conn, row)
                    except UnsendableError as exc:
                        refused.append((row, str(exc)))
                        continue
                    if fut is None:
                        break  # not connected: the rest stays queued
                    pending.append((row, fut))
            if pending:
                await asyncio.wait([f for _, f in pending], timeout=PUBACK_TIMEOUT_S)
            sent: list[uuid.UUID] = []
            by_id: dict[uuid.UUID, asyncpg.Record] = {}
            for row, fut in pending:
                if not fut.done() or fut.cancelled() or fut.exception() is not None:
                    continue  # no PUBACK: stays queued, sent again
                code = fut.result()
                if code >= 0x80:
                    refused.append(
                        (row, f"the broker refused the command message (reason 0x{code:02x})")
                    )
                else:
                    sent.append(row["id"])
                    by_id[row["id"]] = row
            marked = await conn.fetch(_MARK_SENT, sent, self.actor) if sent else []
            failed: list[tuple[asyncpg.Record, datetime]] = []
            for row, msg in refused:
                ts = await conn.fetchval(_MARK_FAILED, row["id"], msg, self.actor)
                if ts is not None:
                    failed.append((row, ts))
        now = time.time()
        for m in marked:
            row = by_id[m["command_id"]]
            self.metrics.send_delay.observe(max(0.0, now - row["created_at"].timestamp()))
            self._announce(row, "sent", m["ts"])
        for row, ts in failed:
            self._announce(row, "failed", ts)
        return len(rows)

    async def _publish_command(
        self, conn: asyncpg.Connection, row: asyncpg.Record
    ) -> asyncio.Future[int] | None:
        project, kind, device = row["project_id"], row["kind"], row["device_id"]
        cid = str(row["id"])
        params = row["params"]
        if isinstance(params, str):
            params = orjson.loads(params)
        if row["protocol"] == "vda5050":
            return await self._publish_vda(conn, row, cid, params)
        if row["protocol"] == "sparkplug":
            return self._publish_spb(row, cid, params)
        reply_to = reply_topic(self.root, project, kind, device)
        remaining = (row["deadline"] - datetime.now(UTC)).total_seconds()
        props: Properties = {
            RESPONSE_TOPIC: reply_to,
            CORRELATION_DATA: cid.encode(),
            MESSAGE_EXPIRY: max(1, math.ceil(remaining)),
        }
        topic = command_topic(self.root, project, kind, device, row["name"])
        payload = command_payload(cid, row["name"], params, row["deadline"], reply_to)
        try:
            return self.session.publish(topic, payload, 1, False, props)
        except ValueError as exc:  # a topic the client refuses
            raise UnsendableError(f"not a valid topic {topic[:200]!r}: {exc}") from None

    async def _publish_vda(
        self, conn: asyncpg.Connection, row: asyncpg.Record, cid: str, params: dict[str, Any]
    ) -> asyncio.Future[int] | None:
        """instantActions or order; headerId counted per topic in the database, in the
        sending transaction, so a restart (or a second commander) never counts backwards."""
        target = self.vda_targets.get((row["project_id"], row["device_id"]))
        if target is None:
            raise UnsendableError(
                f"no VDA 5050 manufacturer and serial number known for {row['device_id']}"
            )
        manufacturer, serial = target
        topic = vda_topic(self.settings.ingest.vda5050_interface, manufacturer, serial, row["name"])
        header = await conn.fetchval(_HEADER, topic)
        payload = vda_payload(
            cid, row["name"], params, header, manufacturer, serial, datetime.now(UTC)
        )
        self._track_vda(row["project_id"], row["device_id"], cid, row["name"],
                        params.get("orderId"))  # fmt: skip
        try:
            return self.session.publish(topic, payload, 1, False)
        except ValueError as exc:
            raise UnsendableError(f"not a valid topic {topic[:200]!r}: {exc}") from None

    def _publish_spb(
        self, row: asyncpg.Record, cid: str, params: dict[str, Any]
    ) -> asyncio.Future[int] | None:
        """NCMD/DCMD metric writes, checked again against the birth certificate the node
        sent last (it may have been reborn with other metrics since the request)."""
        key = self._spb_key(row["project_id"], row["device_id"])
        if key is None or row["name"] != SPB_WRITE:
            raise UnsendableError(f"no Sparkplug B birth certificate known for {row['device_id']}")
        births = self.spb_births[key]
        problem = spb_check(births, params)
        if problem is not None:
            raise UnsendableError(problem)
        topic = spb_topic(*key)
        payload = spb_payload(births, params["metrics"], int(time.time() * 1000))
        self._track_spb(key, cid, params)
        try:
            return self.session.publish(topic, payload, 1, False)
        except ValueError as exc:
            raise UnsendableError(f"not a valid topic {topic[:200]!r}: {exc}") from None

    def _spb_key(self, project: str, device: str) -> SpbKey | None:
        for key in self.spb_births:
            if key[0] == project and spb.device_id(key[1], key[2]) == device:
                return key
        return None

    # ----------------------------------------------------------------- replies

    async def _reply_worker(self, pool: asyncpg.Pool) -> None:
        """Replies (and BIRTH/DATA/state messages) in batches of what is waiting, each batch
        one transaction: one commit (one WAL flush) for up to `REPLY_BATCH` messages instead
        of one each, which is what kept up at 1,000 replies/s. Announced and acknowledged
        after the commit."""
        while True:
            batch = [await self.replies.get()]
            while len(batch) < REPLY_BATCH and not self.replies.empty():
                batch.append(self.replies.get_nowait())
            delay = 0.1
            while True:
                self._deferred = []
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        await self._handle_batch(conn, batch)
                    self.db_ok = True
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.db_ok = False
                    self.metrics.store_errors.inc()
                    log.warning("recording %d replies failed: %s; retrying", len(batch), exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            for row, state, at in self._deferred:
                self._announce(row, state, at)
            self._deferred = []
            acks: dict[int, list[int]] = {}
            for msg in batch:
                if msg.qos:
                    acks.setdefault(msg.gen, []).append(msg.mid)
            for gen, mids in acks.items():
                self.session.ack(gen, mids)

    async def _handle_batch(self, conn: asyncpg.Connection, batch: list[Incoming]) -> None:
        """Native replies that parse are recorded in bulk (`_apply_native`); everything
        else (VDA 5050 states, Sparkplug, what breaks the contract) one by one.

        Why: one by one, a reply cost seven round trips to PostgreSQL (two savepoints, the
        lock, the update, the event); at 500 commands/s (1,000 replies/s) on a busy 2-core
        machine the commander fell seconds behind waiting on them, with most of a core
        idle. Different commands' messages do not depend on each other, and a native
        command is only moved by native replies, so taking those out of order with the
        rest changes no outcome; their own order per command is kept."""
        native: list[NativeReply] = []
        for msg in batch:
            parsed = self._parse_native(msg)
            if parsed is None:
                await self._handle_safely(conn, msg)
            else:
                native.append(parsed)
        if native:
            await self._apply_native(conn, native)

    def _parse_native(self, msg: Incoming) -> NativeReply | None:
        """The reply if `msg` is a native reply that parses; None sends it the slow way
        (which dead-letters it with its reason)."""
        if msg.topic.startswith(self.vda_prefix) or msg.topic.startswith(spb.NAMESPACE + "/"):
            return None
        where = parse_reply_topic(self.root, msg.topic)
        if where is None or msg.props is None:
            return None
        try:
            cid = parse_correlation(msg.props.get(CORRELATION_DATA))
            reply = decode_reply(msg.payload)
        except Exception:  # the one-by-one path reports it with its reason
            return None
        project, _kind, device = where
        return NativeReply(msg, cid, project, device, reply.status, reply.message, reply.result)

    async def _apply_native(self, conn: asyncpg.Connection, replies: list[NativeReply]) -> None:
        """Record native replies with one statement per round, a round holding at most two
        replies per command in arrival order (accepted and completed: one row update)."""
        # Paired by command *and* replying device: a reply naming another device's command
        # must be judged (and dead-lettered) as its own, never applied as that device's.
        per_command: dict[tuple[uuid.UUID, str, str], list[NativeReply]] = {}
        for r in replies:
            per_command.setdefault((r.cid, r.project, r.device), []).append(r)
        rounds: list[list[tuple[NativeReply, NativeReply | None]]] = []
        for mine in per_command.values():
            for n, k in enumerate(range(0, len(mine), 2)):
                if n == len(rounds):
                    rounds.append([])
                rounds[n].append((mine[k], mine[k + 1] if k + 1 < len(mine) else None))
        for part in rounds:
            firsts = [a for a, _ in part]
            seconds = [b for _, b in part]
            rows = await conn.fetch(
                _REPLY_BATCH,
                [a.cid for a in firsts],
                [a.project for a in firsts],
                [a.device for a in firsts],
                [a.status for a in firsts],
                [a.message for a in firsts],
                [_result_json(a) for a in firsts],
                [_detail_json(a) for a in firsts],
                [b.status if b else None for b in seconds],
                [b.message if b else None for b in seconds],
                [_result_json(b) for b in seconds],
                [_detail_json(b) for b in seconds],
                list(range(len(part))),
            )
            found = {row["i"]: row for row in rows}
            for i, pair in enumerate(part):
                row = found.get(i)
                sent = [r for r in pair if r is not None]
                if row is None:
                    for r in sent:
                        unknown = ContractError(
                            Reason.UNKNOWN_COMMAND,
                            f"correlation data {str(r.cid)!r} names no command of device "
                            f"{r.project}/{r.device}",
                        )
                        await self._dead(conn, r.msg, unknown, r.project, r.device)
                    continue
                announced = {k: row[k] for k in _ANNOUNCED} if row["id"] is not None else {}
                for k, (r, took) in enumerate(zip(sent, (row["t1"], row["t2"]), strict=False)):
                    if took is None:
                        self.metrics.replies.labels("stale").inc()
                        log.info("%r for command %s ignored: it was %s", r.status, r.cid,
                                 row["was"])  # fmt: skip
                        continue
                    self.metrics.replies.labels("recorded").inc()
                    step = announced
                    if k == 0 and row["t2"] is not None:  # the first of two, with its message
                        step = {**announced, "message": r.message}
                    self._deferred.append((step, took, row["updated_at"]))

    async def _handle_safely(self, conn: asyncpg.Connection, msg: Incoming) -> None:
        """One message; a bug its content trips is logged and the message dead-lettered,
        never the end of the worker (database errors still retry the batch)."""
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this message only
                await self._handle_reply(conn, msg)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            raise
        except Exception as exc:
            log.exception("handling a message on %r failed", msg.topic[:200])
            err = ContractError(Reason.PROTOCOL, f"commander error: {type(exc).__name__}")
            await self._dead(conn, msg, err, None, None)

    async def _handle_reply(self, conn: asyncpg.Connection, msg: Incoming) -> None:
        if msg.topic.startswith(self.vda_prefix):
            await self._handle_vda_state(conn, msg)
            return
        if msg.topic.startswith(spb.NAMESPACE + "/"):
            await self._handle_spb(conn, msg)
            return
        where = parse_reply_topic(self.root, msg.topic)
        try:
            if where is None:
                raise ContractError(Reason.BAD_TOPIC, "not a command reply topic")
            if msg.props is None:
                raise ContractError(Reason.PROTOCOL, "malformed MQTT properties")
            cid = parse_correlation(msg.props.get(CORRELATION_DATA))
            reply = decode_reply(msg.payload)
        except ContractError as exc:
            project, device = (where[0], where[2]) if where else (None, None)
            await self._dead(conn, msg, exc, project, device)
            return
        project, _kind, device = where
        state = await self._apply(
            conn, cid, project, device, reply.status, reply.message, reply.result
        )
        if state is None:
            unknown = ContractError(
                Reason.UNKNOWN_COMMAND,
                f"correlation data {str(cid)!r} names no command of device {project}/{device}",
            )
            await self._dead(conn, msg, unknown, project, device)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        cid: uuid.UUID,
        project: str,
        device: str,
        status: str,
        message: str | None,
        result: dict[str, Any] | None,
    ) -> str | None:
        """Record a device's outcome if the command may move there; returns the state the
        command was in (None: no such command of this device)."""
        result_json = orjson.dumps(result).decode() if result is not None else None
        row = None
        async with conn.transaction():
            # Locks the row, waiting for a sender that still holds it: an answer may arrive
            # before the sender committed `sent`, and must be judged on what it committed.
            state = await conn.fetchval(_CURRENT, cid, project, device)
            if state in REPLY_FROM[status]:
                row = await conn.fetchrow(_REPLY, cid, status, message, result_json)
                detail: dict[str, Any] = {"message": message} if message else {}
                if result is not None:
                    detail["result"] = result
                await conn.execute(
                    _EVENT,
                    cid,
                    project,
                    device,
                    row["updated_at"],
                    status,
                    f"device:{device}",
                    orjson.dumps(detail).decode(),
                )
        if row is not None:
            self.metrics.replies.labels("recorded").inc()
            self._deferred.append((row, status, row["updated_at"]))  # after the commit
        elif state is not None:
            self.metrics.replies.labels("stale").inc()
            log.info("%r for command %s ignored: it is %s already", status, cid, state)
        return str(state) if state is not None else None

    async def _handle_vda_state(self, conn: asyncpg.Connection, msg: Incoming) -> None:
        """Learn the AGV's address; move its open commands by `actionStates` (instant
        actions, actionId = command id) and by the order it reports (orderId)."""
        parts = msg.topic.split("/")
        try:
            st = decode_vda_state(msg.payload)
            if len(parts) != 5 or (st.manufacturer, st.serialNumber) != (parts[2], parts[3]):
                return  # ingest dead-letters what breaks the contract; nothing to act on
            project, device = self.vda.device_for(st.manufacturer, st.serialNumber)
        except ContractError:
            return
        key = (project, device)
        if self.vda_targets.get(key) != (st.manufacturer, st.serialNumber):
            address = {"manufacturer": st.manufacturer, "serialNumber": st.serialNumber}
            await conn.execute(_TARGET, project, device, "vda5050", orjson.dumps(address).decode())
            self.vda_targets[key] = (st.manufacturer, st.serialNumber)
        open_ = self.vda_open.get(key)
        if not open_:
            return
        moves: list[tuple[str, str, str | None]] = []
        for a in st.actionStates:
            cid = open_.get(a.actionId)
            new = VDA_ACTION_STATES.get(a.actionStatus)
            if cid is not None and new is not None:
                moves.append((cid, new, a.resultDescription))
        order_cid = open_.get(f"order:{st.orderId}") if st.orderId else None
        if order_cid is not None:
            done = not st.nodeStates and not st.edgeStates
            moves.append((order_cid, "completed" if done else "accepted", None))
        for cid, new, message in moves:
            if self.vda_recorded.get(cid) == new:
                continue
            state = await self._apply(conn, uuid.UUID(cid), project, device, new, message, None)
            self.vda_recorded[cid] = new
            if state is None or new in FINAL_STATES or state in FINAL_STATES:
                open_ = {k: v for k, v in open_.items() if v != cid}
                self.vda_open[key] = open_
                self.vda_recorded.pop(cid, None)

    async def _handle_spb(self, conn: asyncpg.Connection, msg: Incoming) -> None:
        """BIRTH: learn the metrics (kept in command_targets for the API's type check).
        DATA: a write is completed once a DATA message reports every written value."""
        try:
            t = spb.parse_topic(msg.topic)
            payload = spb.parse_payload(msg.payload)
        except ContractError:
            return  # ingest dead-letters what breaks the protocol
        key: SpbKey = (t.group, t.node, t.device)
        if t.message_type in (spb.MessageType.NBIRTH, spb.MessageType.DBIRTH):
            metrics: dict[str, MetricDef] = {}
            for m in payload.metrics:
                if not m.name or spb.is_control_metric(m.name):
                    continue
                try:
                    name = m.name.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                metrics[name] = (m.datatype, m.alias if m.HasField("alias") else None)
            if metrics == self.spb_births.get(key):
                return
            self._learn_birth(key, metrics)
            address = {"group": t.group, "node": t.node, "device": t.device, "metrics": metrics}
            await conn.execute(
                _TARGET,
                t.group,
                spb.device_id(t.node, t.device),
                "sparkplug",
                orjson.dumps(address).decode(),
            )
            return
        births = self.spb_births.get(key)
        if births is None:
            self._ask_rebirth(t.group, t.node)
            return
        open_ = self.spb_open.get(key)
        if not open_:
            return
        aliases = self.spb_aliases.get(key, {})
        done: list[str] = []
        for m in payload.metrics:
            metric = m.name.decode("utf-8", "replace") if m.name else aliases.get(m.alias)
            d = births.get(metric) if metric is not None else None
            if d is None or metric is None:
                continue
            name = metric
            value = spb_reported(m, d[0])
            for cid, pending in open_.items():
                if name in pending and spb_matches(value, pending[name], d[0]):
                    del pending[name]
                    if not pending:
                        done.append(cid)
        for cid in done:
            open_.pop(cid, None)
            await self._apply(
                conn,
                uuid.UUID(cid),
                t.group,
                spb.device_id(t.node, t.device),
                "completed",
                "the node reported the written values",
                None,
            )

    def _ask_rebirth(self, group: str, node: str) -> None:
        """Data from a node or device whose birth certificate this commander never saw (it
        started after the node): ask the node to send its births again, at most once per
        REBIRTH_INTERVAL_S, so that writes can be type-checked."""
        now = time.monotonic()
        if now - self.rebirths.get((group, node), -math.inf) < REBIRTH_INTERVAL_S:
            return
        self.rebirths[(group, node)] = now
        out = spb.rebirth_request(group, node, int(time.time() * 1000))
        self.session.publish(out.topic, out.payload, out.qos, out.retain)
        log.info("asked Sparkplug node %s/%s for its births", group, node)

    async def _dead(
        self,
        conn: asyncpg.Connection,
        msg: Incoming,
        exc: ContractError,
        project: str | None,
        device: str | None,
    ) -> None:
        row = deadletter.dead_letter_row(
            msg.received_at, msg.topic, msg.payload, exc, project, device
        )
        await conn.execute(_DEAD, *row)
        self.metrics.replies.labels("dead").inc()
        self.metrics.dead_letters.labels(exc.reason.value).inc()
        log.info("reply on %r dead-lettered: %s", msg.topic[:200], exc)

    # ----------------------------------------------------------------- deadlines

    async def _expiry(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with pool.acquire() as conn:
                    rows = await conn.fetch(_EXPIRE, 1000, self.actor)
                self.db_ok = True
                for row in rows:
                    self._announce(row, "expired", row["updated_at"])
                if len(rows) == 1000:
                    continue
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.db_ok = False
                self.metrics.store_errors.inc()
                log.warning("expiring commands failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.poll_s)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await Commander(settings).run(stop)


def run(settings: Settings) -> None:
    """Entry point of `factory5g commands`."""
    heap.settle()
    run_async(serve(settings), settings.log_level)


__all__ = ["Commander", "run", "serve"]
