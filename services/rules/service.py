"""The rules service: MQTT in, the engine in the middle, alarms stored and published out.

The MQTT input (`mqttin`) feeds each message to the engine in its socket callback
(evaluation is microseconds), a clock task drives absence rules once a second, and a
writer task stores each batch of transitions in one transaction and then publishes it.
When transitions pile up for the database the input stops reading, so memory stays
bounded. Messages are acknowledged once evaluated: the
database tables of ingest are the system of record, and rules accept at-most-once
evaluation across a crash (docs/rules.md). A message that breaks the contract is counted
and skipped; nothing it contains can stop the evaluation of the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import orjson

from services.core import heap
from services.core.db import SERVER_SQL, PrimaryWatch, asyncpg_dsn
from services.core.metrics import MetricsServer, service_registry
from services.core.runtime import cancel_and_wait, run_async
from services.core.settings import Settings
from services.protocols import alarm_lifecycle as lifecycle
from services.protocols.adapters.base import Adapter
from services.protocols.alarms import alarm_payload, alarm_topic
from services.rules import store
from services.rules.adapters import passive_adapters
from services.rules.config import RulesConfigError, RuleSet, load_rules, parse_rules
from services.rules.engine import Engine, Transition
from services.rules.ingress import Ingress
from services.rules.metrics import RulesMetrics
from services.rules.mqttin import RulesInput
from services.rules.replay import replay
from services.rules.sharding import ShardFilter

log = logging.getLogger("factory5g.rules")

TICK_S = 1.0
RELOAD_POLL_S = 2.0
# How often the API's requests for a device's effective rules are looked for, and how long
# a request nobody collected is kept.
EFFECTIVE_POLL_S = 0.5
EFFECTIVE_PURGE_S = 60.0
RULES_APPLICATION_NAME = "factory5g-rules"
BATCH_MAX = 1000
# Transitions waiting for the database before the input stops reading, and resumes.
HIGH_WATER = 5000
LOW_WATER = 1000


class RulesService:
    def __init__(
        self,
        settings: Settings,
        ruleset: RuleSet | None = None,
        adapters: Sequence[Adapter] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rules_file = settings.rules.rules_file
        self.ruleset = ruleset or load_rules(self.rules_file)
        self.engine = Engine(self.ruleset)
        self.metrics = RulesMetrics(service_registry())
        self.shards = ShardFilter(settings.rules.shard_index, settings.rules.shard_count)
        if adapters is None:
            adapters = passive_adapters(settings)
        self.ingress = Ingress(
            self.engine, self.shards, settings.mqtt.topic_root, adapters, self.metrics
        )
        self.clock = clock
        self.queue: asyncio.Queue[list[Transition]] = asyncio.Queue()
        self.pending = 0  # transitions queued for the writer
        self.input = RulesInput(
            settings, self.ingress.topic_filters(), self._on_message, self.metrics
        )
        self.connected = self.input.connected
        self.ready = self.input.ready
        self.db_ok = False
        self.primary = PrimaryWatch()
        self.reload_requested = asyncio.Event()
        self._mtime = self._file_mtime()

    # ----------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        pool = await asyncpg.create_pool(
            asyncpg_dsn(s.database.url),
            min_size=1,
            max_size=2,
            timeout=s.database.connect_timeout_s,
            init=self._connected_to,
            # Named, so the API sees a rules service is connected to decide rule versions.
            server_settings={"application_name": RULES_APPLICATION_NAME},
        )
        server = MetricsServer(
            s.rules.metrics_host, s.rules.metrics_port, self.health, self.metrics.registry
        )
        await server.start()
        try:
            await self._restore(pool)
            tasks = [
                asyncio.create_task(self.input.run(stop), name="rules-mqtt"),
                asyncio.create_task(self._clock_loop(stop), name="rules-clock"),
                asyncio.create_task(self._reload_loop(stop, pool), name="rules-reload"),
                asyncio.create_task(self._effective_loop(stop, pool), name="rules-effective"),
            ]
            writer = asyncio.create_task(self._writer(pool), name="rules-writer")
            await stop.wait()
            for task in tasks:
                await cancel_and_wait(task)
            if self._backtest is not None:
                await cancel_and_wait(self._backtest)
            await self.queue.join()  # store what the engine already decided
            await cancel_and_wait(writer)
        finally:
            await server.stop()
            await pool.close()
            self.metrics.mqtt_connected.set(0)

    async def _connected_to(self, conn: asyncpg.Connection) -> None:
        """Every new pool connection: which server it reached. The pool replaces a
        connection a failover broke on the next acquire, and with a multi-host URL the
        replacement reaches the new primary; `_store` retries the batch meanwhile."""
        server = str(await conn.fetchval(SERVER_SQL))
        previous = self.primary.server
        if self.primary.seen(server):
            self.metrics.database_failovers.inc()
            log.warning("database server changed from %s to %s (failover)", previous, server)

    def health(self) -> tuple[bool, dict[str, object]]:
        ok = self.connected.is_set() and self.db_ok
        return ok, {
            "mqtt": self.connected.is_set(),
            "database": self.db_ok,
            "database_primary": self.primary.snapshot(),
            "shard": f"{self.shards.index}/{self.shards.count}",
            "devices": len(self.engine.devices),
            "rules_file": self.ruleset.source,
        }

    async def _restore(self, pool: asyncpg.Pool) -> None:
        """Adopt the alarms a previous run left active, for the devices this shard owns."""
        async with pool.acquire() as conn:
            rows = await lifecycle.active_alarms(conn)
        self.db_ok = True
        now = self.clock()
        for row in rows:
            project, device = row["project_id"], row["device_id"]
            if not self.shards.owns(project, device):
                continue
            kind = row["kind"] or self._kind_for_rule(row["rule"])
            if kind is None:
                continue
            self.engine.restore(
                project,
                kind,
                device,
                row["rule"],
                row["severity"],
                row["opened_at"].timestamp(),
                row["count"],
                now,
            )
        self.metrics.active_alarms.set(sum(1 for _ in self.engine.active()))

    def _kind_for_rule(self, rule: str) -> str | None:
        for kind, rules in self.ruleset.defaults.items():
            if rule in rules:
                return kind
        return None

    # ----------------------------------------------------------------- MQTT

    def _on_message(self, topic: str, payload: bytes) -> None:
        transitions = self.ingress.handle(topic, payload, self.clock())
        if transitions:
            self._enqueue(transitions)

    def _enqueue(self, transitions: list[Transition]) -> None:
        self.queue.put_nowait(transitions)
        self.pending += len(transitions)
        self.metrics.pending_transitions.set(self.pending)
        if self.pending > HIGH_WATER:
            self.input.pause()

    def _dequeued(self, n: int) -> None:
        self.pending -= n
        self.metrics.pending_transitions.set(self.pending)
        if self.input.paused and self.pending < LOW_WATER:
            self.input.resume()

    async def _clock_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            transitions = self.engine.tick(self.clock())
            self.metrics.devices.set(len(self.engine.devices))
            if transitions:
                self._enqueue(transitions)

    # ----------------------------------------------------------------- reload

    def request_reload(self) -> None:
        self.reload_requested.set()

    def _file_mtime(self) -> float | None:
        if self.rules_file is None:
            return None
        try:
            return os.stat(self.rules_file).st_mtime
        except OSError:
            return None

    async def _reload_loop(self, stop: asyncio.Event, pool: asyncpg.Pool | None = None) -> None:
        if pool is not None:
            await self._poll_versions(pool)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reload_requested.wait(), RELOAD_POLL_S)
            mtime = self._file_mtime()
            if self.reload_requested.is_set() or mtime != self._mtime:
                self.reload_requested.clear()
                self._mtime = mtime
                if self.version is None:  # an active API version wins over the file
                    self.reload()
            if pool is not None:
                await self._poll_versions(pool)

    version: int | None = None  # the active rule version from the API, if any
    _backtest: asyncio.Task[None] | None = None

    async def _run_backtest(self, pool: asyncpg.Pool, job: asyncpg.Record) -> None:
        """Replay the stored history of the job's range with the running rules and with
        the submitted document; store both outcomes (alarms opened, cleared, flaps)."""
        try:
            candidate = parse_rules(job["yaml"], f"backtest {job['id']}")
        except RulesConfigError as exc:
            await pool.execute(
                "UPDATE rule_backtests SET status = 'rejected', error = $2, decided_at = now() "
                "WHERE id = $1",
                job["id"],
                str(exc),
            )
            return
        try:
            result = {
                "current": await self._replayed(self.ruleset, job),
                "candidate": await self._replayed(candidate, job),
            }
        except Exception as exc:  # a failed replay is reported, the service goes on
            log.exception("backtest %s failed", job["id"])
            await pool.execute(
                "UPDATE rule_backtests SET status = 'failed', error = $2, decided_at = now() "
                "WHERE id = $1",
                job["id"],
                f"{exc.__class__.__name__}: {exc}",
            )
            return
        await pool.execute(
            "UPDATE rule_backtests SET status = 'done', result = $2::jsonb, decided_at = now() "
            "WHERE id = $1",
            job["id"],
            orjson.dumps(result).decode(),
        )

    async def _replayed(self, ruleset: RuleSet, job: asyncpg.Record) -> dict[str, Any]:
        opened: Counter[tuple[str, str]] = Counter()

        def emit(tr: Transition) -> None:
            if tr.transition == "opened":
                opened[(tr.device, tr.rule)] += 1

        summary = await replay(
            self.settings.database.url,
            ruleset,
            job["range_start"],
            job["range_end"],
            job["project_id"],
            emit,
        )
        by_rule: dict[str, dict[str, int]] = {}
        for (rule, transition), n in summary.transitions.items():
            by_rule.setdefault(rule, {})[transition] = n
        for (_, rule), n in opened.items():
            # A flap: the same device's alarm opened again within the range.
            entry = by_rule.setdefault(rule, {})
            entry["flaps"] = entry.get("flaps", 0) + max(0, n - 1)
        return {"records": summary.records, "rules": by_rule}

    async def _effective_loop(self, stop: asyncio.Event, pool: asyncpg.Pool) -> None:
        """Answer the API's requests for the effective rules of a device.

        The API cannot parse a rule document (it may not import this service), and only a
        running rules service knows which document is in force; so it asks through a table
        and waits (docs/rules.md, "Effective rules"). Any replica may answer: the rules are
        the same in every one, and the first conditional UPDATE wins."""
        failing: str | None = None
        purged = 0.0
        while not stop.is_set():
            try:
                await self._answer_effective(pool)
                if time.monotonic() - purged > EFFECTIVE_PURGE_S:
                    purged = time.monotonic()
                    await pool.execute(
                        "DELETE FROM rule_effective_requests "
                        "WHERE created_at < now() - interval '1 hour'"
                    )
                failing = None
            except (asyncpg.PostgresError, OSError) as exc:  # e.g. not migrated yet
                if failing != exc.__class__.__name__:
                    failing = exc.__class__.__name__
                    log.warning("effective rule requests not answered: %s", failing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EFFECTIVE_POLL_S)

    async def _answer_effective(self, pool: asyncpg.Pool) -> None:
        for row in await pool.fetch(
            "SELECT id, project_id, device_id, kinds FROM rule_effective_requests "
            "WHERE status = 'pending' ORDER BY id LIMIT 50"
        ):
            ruleset = self.ruleset
            try:
                rules = ruleset.effective(row["project_id"], row["kinds"], row["device_id"])
                result: str | None = orjson.dumps(
                    {
                        "version": self.version,
                        "source": ruleset.source,
                        "rules": [r.as_dict() for r in rules],
                    }
                ).decode()
                status, error = "done", None
            except Exception as exc:  # reported to the asker; the service goes on
                log.exception("effective rules of request %s failed", row["id"])
                result, status, error = None, "failed", f"{exc.__class__.__name__}: {exc}"
            await pool.execute(
                "UPDATE rule_effective_requests SET status = $2, result = $3::jsonb, "
                "error = $4, decided_at = now() WHERE id = $1 AND status = 'pending'",
                row["id"],
                status,
                result,
                error,
            )

    async def _poll_versions(self, pool: asyncpg.Pool) -> None:
        """Decide submitted rule versions and apply the active one when it changed.

        Every replica polls: the first to decide a pending version wins (the UPDATE is
        conditional), and each then applies whatever is active. A version the parser
        refuses is marked rejected with the parser's own message (`rules v7:3:5: ...`), so
        the API can answer with it; the running rules stay."""
        try:
            for row in await pool.fetch(
                "SELECT id, yaml FROM rule_versions WHERE status = 'pending' ORDER BY id"
            ):
                source = f"rules v{row['id']}"
                try:
                    parse_rules(row["yaml"], source)
                except RulesConfigError as exc:
                    await pool.execute(
                        "UPDATE rule_versions SET status = 'rejected', error = $2, "
                        "decided_at = now() WHERE id = $1 AND status = 'pending'",
                        row["id"],
                        str(exc),
                    )
                    continue
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "UPDATE rule_versions SET status = 'superseded', decided_at = now() "
                        "WHERE status = 'active' AND id < $1",
                        row["id"],
                    )
                    await conn.execute(
                        "UPDATE rule_versions SET status = 'active', decided_at = now() "
                        "WHERE id = $1 AND status = 'pending'",
                        row["id"],
                    )
            active = await pool.fetchrow(
                "SELECT id, yaml FROM rule_versions WHERE status = 'active' "
                "ORDER BY id DESC LIMIT 1"
            )
            profiles = {
                (r["project_id"], r["device_id"]): tuple(r["profiles"])
                for r in await pool.fetch(
                    "SELECT project_id, device_id, profiles FROM devices "
                    "WHERE status = 'registered' AND cardinality(profiles) > 0"
                )
            }
            if self._backtest is None or self._backtest.done():
                claimed = await pool.fetchrow(
                    "UPDATE rule_backtests SET status = 'running' WHERE id = ("
                    " SELECT id FROM rule_backtests WHERE status = 'pending' ORDER BY id LIMIT 1"
                    ") AND status = 'pending' "
                    "RETURNING id, yaml, project_id, range_start, range_end"
                )
                if claimed is not None:
                    self._backtest = asyncio.create_task(self._run_backtest(pool, claimed))
        except (asyncpg.PostgresError, OSError) as exc:  # e.g. not migrated: file rules stay
            log.warning("rule versions not polled: %s", exc.__class__.__name__)
            return
        if profiles != self.engine.profiles:
            # A device's profiles name the rule sets it takes part in: re-derive its rules.
            self.engine.profiles = profiles
            transitions = self.engine.reload(self.ruleset, self.clock())
            if transitions:
                self._enqueue(transitions)
            log.info("device profiles changed: %d devices with profiles", len(profiles))
        if active is None or active["id"] == self.version:
            return
        ruleset = parse_rules(active["yaml"], f"rules v{active['id']}")
        self.version = int(active["id"])
        self.ruleset = ruleset
        transitions = self.engine.reload(ruleset, self.clock())
        if transitions:
            self._enqueue(transitions)
        self.metrics.reloads.labels("ok").inc()
        log.info("rules v%d applied (submitted through the API)", self.version)

    def reload(self) -> bool:
        """Re-read the rule file; a bad file is logged and the running rules stay."""
        try:
            ruleset = load_rules(self.rules_file)
        except RulesConfigError as exc:
            log.error("rule file not reloaded, keeping the running rules: %s", exc)
            self.metrics.reloads.labels("error").inc()
            return False
        self.ruleset = ruleset
        transitions = self.engine.reload(ruleset, self.clock())
        if transitions:
            self._enqueue(transitions)
        self.metrics.reloads.labels("ok").inc()
        log.info("rules reloaded from %s", ruleset.source)
        return True

    # ----------------------------------------------------------------- writer

    async def _writer(self, pool: asyncpg.Pool) -> None:
        while True:
            batch = await self.queue.get()
            while not self.queue.empty() and len(batch) < BATCH_MAX:
                batch.extend(self.queue.get_nowait())
                self.queue.task_done()
            try:
                stored = await self._store(pool, batch)
                self._dequeued(len(batch))
                self._publish(stored)
            finally:
                self.queue.task_done()

    async def _store(self, pool: asyncpg.Pool, batch: list[Transition]) -> list[store.Stored]:
        delay = 0.1
        while True:
            try:
                async with pool.acquire() as conn:
                    stored = await store.apply(conn, batch)
                self.db_ok = True
                return stored
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.db_ok = False
                self.metrics.store_errors.inc()
                log.warning("storing %d alarm transitions failed: %s; retrying", len(batch), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _publish(self, stored: list[store.Stored]) -> None:
        """Hand the stored transitions to the MQTT client without waiting for PUBACKs.

        Waiting would deadlock under backpressure: the input reads no PUBACK while paused,
        and only the writer's next batch brings the backlog down to resume it.
        """
        root = self.settings.mqtt.topic_root
        sends = []
        for st in stored:
            tr = st.transition
            self.metrics.alarms.labels(tr.rule, tr.severity, st.name).inc()
            payload = alarm_payload(
                alarm_id=st.alarm_id,
                transition=st.name,
                state=st.state,
                project=tr.project,
                kind=tr.kind,
                device=tr.device,
                rule=tr.rule,
                rule_type=tr.rule_type,
                severity=tr.severity,
                at=tr.at,
                opened_at=st.opened_at,
                value=tr.value,
                count=st.count,
                message=tr.message,
                evidence=tr.evidence,
            )
            sends.append((alarm_topic(root, tr.project, tr.kind, tr.device, tr.rule), payload))
        failed = sum(1 for t, p in sends if not self.input.publish(t, p))
        if failed:
            log.warning(
                "%d of %d alarm transitions not published: not connected", failed, len(sends)
            )
        now = time.time()
        for st in stored:
            if st.transition.received_at is not None:
                self.metrics.alarm_delay.observe(max(0.0, now - st.transition.received_at))
        self.metrics.active_alarms.set(sum(1 for _ in self.engine.active()))


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`); SIGHUP reloads the rule file."""
    stop = stop or asyncio.Event()
    service = RulesService(settings)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.request_reload)
    log.info(
        "rules from %s; shard %d of %d",
        service.ruleset.source,
        settings.rules.shard_index,
        settings.rules.shard_count,
    )
    await service.run(stop)


def run(settings: Settings) -> None:
    """Entry point of `factory5g rules`: a bad rule file exits with status 2 and the error."""
    try:
        load_rules(settings.rules.rules_file)
    except RulesConfigError as exc:
        print(f"invalid rule file: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    heap.settle()
    run_async(serve(settings), settings.log_level)
