"""One benchmark run: fresh servers, one ingestor, the fleet, scheduled faults, the audit.

A run starts its own PostgreSQL (durable: fsync and synchronous commit on, as in
production; for the failover scenarios two members under Patroni with a synchronous
standby, `f5gdev.devstack.ha`) and a fresh Mosquitto for each ingestor, so a previous
ingestor's persistent session cannot make the broker queue messages for nobody. The target
and the baseline ingestor run the same workload one after the other in the same process.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.ha import HaPostgres
from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from loadtests import stats
from loadtests.fleet import Fleet, FleetConfig, FleetTotals
from loadtests.observer import Audit, CommittedCounter, Observer
from loadtests.payloads import (
    ROWS_PER_RECORD,
    SEQ_AUDITED,
    STREAM_TABLE,
    PayloadMaker,
    stored_device,
    topic,
)
from loadtests.procs import Ingestor, wait_until
from loadtests.publisher import device_names
from services.core import db

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Fault:
    """`kind` at `at_s` seconds into publishing, lasting `duration_s`."""

    kind: str  # db-outage | db-failover | db-switchover | broker-restart | ingest-crash
    at_s: float
    duration_s: float


@dataclass(frozen=True)
class Workload:
    stream: str = "link"
    batch: int = 1
    devices: int = 600
    processes: int = 3
    rate: float = 0.0
    qos: int = 1
    duration_s: float = 30.0
    warmup_s: float = 5.0
    drain_s: float = 60.0
    stall_s: float = 15.0  # no new rows for this long after publishing = the rest is lost
    probes_per_process: int = 2
    faults: tuple[Fault, ...] = ()
    ha: bool = False  # the database is a Patroni cluster (db-failover, db-switchover)
    # The raw-socket publisher (pre-encoded packets, issue 21) unless a fault needs paho's
    # reconnects or the run is QoS 0; False forces paho.
    raw_publisher: bool = True

    @property
    def rows_per_message(self) -> int:
        return self.batch * ROWS_PER_RECORD[self.stream]

    def fleet(self, port: int, run_id: str) -> FleetConfig:
        """The publishers of this workload against the broker on `port`."""
        return FleetConfig(
            host="127.0.0.1",
            port=port,
            stream=self.stream,
            devices=self.devices,
            processes=self.processes,
            rate=self.rate,
            qos=self.qos,
            duration_s=self.duration_s,
            batch=self.batch,
            run_id=run_id,
            raw=self.raw_publisher and self.qos > 0 and not self.faults,
        )


class BenchEnv:
    """Servers owned by one benchmark invocation, under a temporary directory."""

    def __init__(
        self,
        base: Path | None = None,
        durable: bool = True,
        pg: Postgres | HaPostgres | None = None,
        ha: bool = False,
    ) -> None:
        self._own_base = base is None
        self.base = base or Path(tempfile.mkdtemp(prefix="f5g-bench-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self._own_pg = pg is None
        if pg is None:
            pg = (
                HaPostgres(self.base / "ha", durable=durable)
                if ha
                else Postgres(self.base / "postgres", port=free_port(), durable=durable)
            )
        self.pg: Postgres | HaPostgres = pg
        self._brokers: list[Mosquitto] = []

    def __enter__(self) -> BenchEnv:
        self.pg.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for b in self._brokers:
            b.stop()
        if self._own_pg:
            if isinstance(self.pg, HaPostgres):
                self.pg.stop()
            else:
                self.pg.stop(mode="immediate")
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def new_database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        self.pg.ensure_database(name)
        url = self.pg.url_for(name)
        db.migrate(url)
        return url

    def drop_database(self, url: str) -> None:
        self.pg.drop_database(url.rsplit("/", 1)[1])

    def new_broker(self) -> Mosquitto:
        broker = Mosquitto(
            self.base / f"mosquitto-{len(self._brokers)}",
            port=free_port(),
            extra_config="sys_interval 1",  # fresh $SYS counters for `broker_dropped`
        )
        broker.start()
        self._brokers.append(broker)
        return broker


DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


def broker_dropped(port: int, timeout_s: float = 3.0) -> int | None:
    """Messages the broker dropped at its queue limits since it started, from `$SYS`.

    Mosquitto acknowledges a QoS 1 publish and then drops it for a subscriber whose session
    queue is over `max_queued_bytes`/`max_queued_messages`: such records are lost before
    any ingestor sees them, and a report must say where they went.
    """
    got: list[int] = []
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            got.append(int(msg.payload))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sys-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return None
    client.subscribe(DROPPED_TOPIC)
    client.loop_start()
    try:
        done.wait(timeout_s)  # retained, republished every second (sys_interval 1)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[-1] if got else None


@dataclass
class Servers:
    """What a run may break on purpose."""

    pg: Postgres | HaPostgres
    broker: Mosquitto
    ingestor: Ingestor


def _inject(kind: str, servers: Servers, duration_s: float, record: dict[str, Any]) -> None:
    """Cause the fault; what it did goes into `record` (the run's fault entry)."""
    if kind in ("db-failover", "db-switchover"):
        ha = servers.pg
        if not isinstance(ha, HaPostgres):
            raise ValueError(f"{kind} needs the HA database (Workload.ha)")
        old = ha.primary()
        record["old_primary"] = old.name
        if kind == "db-failover":
            ha.kill_primary()  # SIGKILL to Patroni and every PostgreSQL process of it
        else:
            ha.switchover()  # planned: Patroni's REST API, the old primary rejoins
        record["injected_wall"] = time.time()
        new = ha.wait_primary(120.0, other_than=old.name)
        record["promoted_wall"] = time.time()
        record["new_primary"] = new.name
        time.sleep(duration_s)
    elif kind == "db-outage":
        assert isinstance(servers.pg, Postgres)
        servers.pg.stop(mode="fast")
        time.sleep(duration_s)
        servers.pg.start()
    elif kind == "broker-restart":
        servers.broker.stop()
        time.sleep(duration_s)
        servers.broker.start()
    elif kind == "ingest-crash":
        servers.ingestor.kill()
        time.sleep(duration_s)
        servers.ingestor.start()
    else:
        raise ValueError(f"unknown fault {kind!r}")


def wait_ready(observer: Observer, port: int, stream: str, timeout: float = 90.0) -> bool:
    """Publish warm-up records until one is stored: proves the ingestor subscribed and can
    commit, whatever ingestor it is (a health endpoint would prove less)."""
    maker = PayloadMaker("link", "ready")  # every ingestor speaks the native contract
    warm = Observer(observer.url, "link_kpis", "warmup", [])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + timeout
    seq = 1
    try:
        while time.monotonic() < deadline:
            payload = maker.render(seq, int(time.time() * 1000))
            client.publish(topic("warmup", "link", "ready"), payload, qos=1)
            seq += maker.batch
            if wait_until(lambda: warm.count() > 0, 1.0, 0.1):
                return True
    finally:
        client.loop_stop()
        client.disconnect()
        warm.stop()
    return False


@dataclass
class RunResult:
    ingestor: str
    workload: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_workload(
    env: BenchEnv,
    name: str,
    command: list[str],
    work: Workload,
    log_dir: Path,
    progress: Progress = print,
    extra_env: dict[str, str] | None = None,
    drain_s: float | None = None,
) -> RunResult:
    """Run `work` against one ingestor `command` and measure it from the outside."""
    url = env.new_database()
    broker = env.new_broker()
    run_id = f"{name}-{uuid.uuid4().hex[:6]}"
    ingestor = Ingestor(
        name,
        command,
        {
            "F5G_DATABASE__URL": url,
            "F5G_MQTT__HOST": "127.0.0.1",
            "F5G_MQTT__PORT": str(broker.port),
            "F5G_INGEST__CLIENT_ID": f"bench-{run_id}",
            "F5G_LOG_LEVEL": "WARNING",
            "F5G_INGEST__VDA5050_DEFAULT_PROJECT": "bench",
            # As `factory5g up` runs its single ingest on Mosquitto 2.0, which does not
            # restore `$share` subscriptions after a restart (docs/benchmarks.md).
            "F5G_INGEST__SHARE_GROUP": "",
            **(extra_env or {}),
        },
        log_dir / f"{name}.log",
    )
    table = STREAM_TABLE[work.stream]
    per_process = min(work.probes_per_process, work.devices // work.processes)
    probes = [
        stored_device(work.stream, i, d)
        for i in range(work.processes)
        for d in device_names(i, per_process)
        if work.stream in SEQ_AUDITED
    ]
    observer = Observer(
        url, table, "bench", probes, ROWS_PER_RECORD[work.stream], since=time.time()
    )
    result = RunResult(name, {**work.__dict__, "faults": [f.__dict__ for f in work.faults]})
    servers = Servers(env.pg, broker, ingestor)
    fault_threads: list[threading.Thread] = []
    try:
        ingestor.start()
        if not wait_ready(observer, broker.port, work.stream):
            raise RuntimeError(
                f"{name} did not store a warm-up record within 90 s; log tail:\n"
                + ingestor.log_tail()
            )
        fleet = Fleet(work.fleet(broker.port, run_id))
        base_rows = observer.count()
        committed = CommittedCounter(ingestor.metrics, base_rows)
        if committed.available:
            observer.sampler = committed
        observer.start()
        rss: list[list[float]] = []
        fleet.start()
        t_start = time.time()
        pending_faults = sorted(work.faults, key=lambda f: f.at_s)
        progress(f"[{name}] publishing for {work.duration_s:.0f} s ...")
        last_line = 0.0
        while not fleet.done:
            fleet.poll(0.25)
            now = time.time()
            fleet.sample()
            rss.append([now, float(ingestor.rss())])
            while pending_faults and now - t_start >= pending_faults[0].at_s:
                fault = pending_faults.pop(0)
                progress(f"[{name}] fault: {fault.kind} for {fault.duration_s:.0f} s")
                record: dict[str, Any] = {**fault.__dict__, "wall": now}
                result.faults.append(record)
                th = threading.Thread(
                    target=_inject,
                    args=(fault.kind, servers, fault.duration_s, record),
                    daemon=True,
                )
                th.start()
                fault_threads.append(th)
            if now - last_line >= 1.0:
                last_line = now
                progress(_progress_line(name, now - t_start, fleet, observer, ingestor, work))
        totals = fleet.join()
        for th in fault_threads:
            th.join(120)
        expected_rows = (totals.acked * work.rows_per_message) + base_rows
        progress(f"[{name}] published; waiting for the ingestor to catch up ...")
        drain = _drain(
            observer, ingestor, rss, expected_rows, drain_s or work.drain_s, work.stall_s
        )
        drained = drain == "complete"
        if not ingestor.alive():
            result.notes.append(f"{name} was not running at the end of the run")
        result.metrics = ingestor.metrics()
        observer.stop()
        audit = _audit(observer, totals, work.stream)
        result.audit = audit.as_dict()
        result.audit["drained"] = drained
        result.audit["drain"] = drain
        if drain == "timeout":
            # Still committing when the run ended: the rest is backlog, not proven lost.
            result.audit["backlog_at_end"] = result.audit["lost"]
            result.audit["lost"] = None
            result.notes.append(
                f"still catching up when the run ended ({drain_s or work.drain_s:.0f} s after "
                "publishing stopped); records not yet stored are reported as backlog, not loss"
            )
        result.summary = stats.summarise(work, totals, observer, rss, drained, base_rows)
        dropped = broker_dropped(broker.port)
        result.summary["broker_dropped_msgs"] = dropped
        if dropped and result.audit.get("lost"):
            result.notes.append(
                f"the broker dropped {dropped:,} messages at its session queue limit "
                "(max_queued_bytes) after acknowledging them to the publishers: they never "
                "reached the ingestor and are counted as lost"
            )
        if probes and not result.summary["latency_steady"]["samples"]:
            result.notes.append(
                "no probe record published in the steady window was committed before the run "
                "ended, so steady-window latency percentiles are missing: latency exceeded "
                f"{time.time() - totals.publish_end + work.duration_s - work.warmup_s:.0f} s"
            )
        for record in result.faults:
            if "promoted_wall" in record:
                failover = failover_figures(record, observer, result.audit)
                result.summary["failover"] = failover
                result.notes.append(_failover_note(record, failover))
        result.series = {
            "published": [[t, float(s)] for t, s, _ in totals.samples],
            "acked": [[t, float(a)] for t, _, a in totals.samples],
            "committed_rows": [[t, float(c - base_rows)] for t, c in observer.counts],
            "latency": _thin([[t, lat] for t, lat in observer.latencies], 4000),
            "rss": rss,
        }
        return result
    finally:
        observer.stop()
        ingestor.stop()
        for th in fault_threads:
            th.join(120)
        try:
            env.drop_database(url)
        except Exception as exc:  # keep the run's result; the env is thrown away anyway
            progress(f"[{name}] could not drop {url}: {exc}")


# How long after the first commit on the new primary latencies still count as "during the
# event": the backlog built while no primary took writes drains in that window.
EVENT_TAIL_S = 10.0


def failover_figures(
    record: dict[str, Any], observer: Observer, audit: dict[str, Any]
) -> dict[str, Any]:
    """Figures of one failover or switchover, from the database's side.

    The first commit on the new primary is the first committed-rows sample after the new
    primary was seen that is above the count at that moment (the old primary commits
    nothing once it is gone; the count comes every `count_s` seconds, its resolution).
    p99 during the event covers probe records seen from the fault until EVENT_TAIL_S after
    that first commit."""
    start = float(record["wall"])
    promoted = float(record["promoted_wall"])
    counts = sorted(observer.counts)
    at_promotion = max((c for t, c in counts if t <= promoted), default=0)
    first = next((t for t, c in counts if t > promoted and c > at_promotion), None)
    end = (first if first is not None else promoted) + EVENT_TAIL_S
    during = [lat for t, lat in observer.latencies if start <= t <= end]
    return {
        "old_primary": record.get("old_primary"),
        "new_primary": record.get("new_primary"),
        "promoted_after_s": round(promoted - start, 2),
        "first_commit_on_new_primary_s": round(first - start, 2) if first else None,
        "resolution_s": observer.count_s,
        "p99_during_event_ms": stats.percentile([x * 1000 for x in during], 99),
        "event_samples": len(during),
        "acked": audit.get("acked_records"),
        "stored": audit.get("stored_records"),
        "lost": audit.get("lost"),
        "duplicated": audit.get("duplicated_rows"),
    }


def _failover_note(record: dict[str, Any], f: dict[str, Any]) -> str:
    first = f["first_commit_on_new_primary_s"]
    return (
        f"{record['kind']}: {f['old_primary']} -> {f['new_primary']}; the new primary was "
        f"promoted {f['promoted_after_s']:.1f} s after the fault, first commit on it after "
        + (f"{first:.1f} s" if first is not None else "none")
        + f" (resolution {f['resolution_s']:.0f} s); acked {f['acked']:,}, stored "
        f"{f['stored']:,}, lost {f['lost']}, duplicated {f['duplicated']}; p99 latency "
        f"during the event {f['p99_during_event_ms']:,.0f} ms ({f['event_samples']} probe "
        f"records from the fault to {EVENT_TAIL_S:.0f} s after the first commit)"
    )


def _thin(points: list[list[float]], limit: int) -> list[list[float]]:
    """Every k-th point, so result.json stays small; figures come from the full series."""
    step = max(1, -(-len(points) // limit))
    return [[round(t, 3), round(v, 4)] for t, v in points[::step]]


def _audit(observer: Observer, totals: FleetTotals, stream: str) -> Audit:
    """Audit under the device ids the platform stores (VDA 5050 and Sparkplug rename)."""
    last: dict[str, int] = {}
    unacked: dict[str, list[int]] = {}
    for r in totals.results:
        for name, top in zip(r.devices, r.last_seq, strict=True):
            stored = stored_device(stream, r.index, name)
            last[stored] = top
            if name in r.unacked:
                unacked[stored] = r.unacked[name]
    if stream in SEQ_AUDITED:
        return observer.audit(last, unacked)
    acked = {d: top - len(unacked.get(d, [])) for d, top in last.items()}
    return observer.audit_rows(acked, last)


def _drain(
    observer: Observer,
    ingestor: Ingestor,
    rss: list[list[float]],
    expected: int,
    limit: float,
    stall_s: float,
) -> str:
    """Wait until every acknowledged row is stored ("complete"), or progress stops for stall_s
    ("stalled"), or `limit` passes while rows still arrive ("timeout": a backlog, not a
    loss, which is what a slow baseline leaves behind)."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            rows = observer.count()
        except Exception:
            rows = last
        observer.counts.append((time.time(), rows))
        rss.append([time.time(), float(ingestor.rss())])
        if rows >= expected:
            return "complete"
        if rows != last:
            last, last_change = rows, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            return "stalled"
        time.sleep(0.5)
    return "timeout"


def _progress_line(
    name: str, elapsed: float, fleet: Fleet, observer: Observer, ingestor: Ingestor, work: Workload
) -> str:
    committed = observer.counts[-1][1] if observer.counts else 0
    msgs = committed / work.rows_per_message
    lat = [x for _, x in observer.latencies[-200:]]
    p50 = sorted(lat)[len(lat) // 2] * 1000 if lat else float("nan")
    rate = fleet.sent / elapsed if elapsed > 0 else 0.0
    return (
        f"[{name}] t={elapsed:5.1f}s sent={fleet.sent:>9} ({rate:>8.0f}/s) "
        f"acked={fleet.acked:>9} committed={msgs:>11.0f} "
        f"lag={fleet.acked - msgs:>9.0f} lat~{p50:6.1f}ms rss={ingestor.rss() / 2**20:6.1f}MB"
    )
