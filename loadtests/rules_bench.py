"""Rules alarm latency: device publish to alarm stored *and* published, under fleet load.

Ingest and rules both run; the fleet supplies the background load (default 10,000 msg/s)
while a trigger publisher sends one e-stop AGV record per new device at a steady pace.
Each e-stop must open a `safety_stop` alarm: the alarm counts as delivered when it is both
visible in the `alarms` table (polled) and received on its MQTT alarm topic, and its
latency is the later of the two minus the trigger's publish time.

The same run also measures ingest's own publish-to-commit latency on probe devices of the
background fleet (same broker, same publishers, same database, polled at the same 10 ms):
the reference the alarm latency is stated against. A machine that is three times slower
makes both slower; their ratio is what the rules path adds, and it carries from one
machine to the next where a bare millisecond figure does not (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto, free_port
from loadtests import stats
from loadtests.fleet import Fleet
from loadtests.observer import CommittedCounter, Observer
from loadtests.payloads import ROWS_PER_RECORD, SEQ_AUDITED, STREAM_TABLE, stored_device, topic
from loadtests.procs import INGESTORS, CpuMeter, Ingestor, wait_until
from loadtests.publisher import device_names
from loadtests.runner import BenchEnv, RunResult, Workload, wait_ready
from services.protocols.alarms import alarm_filter

RULES_COMMAND = [*INGESTORS["ingest"][:-1], "rules"]
PROJECT = "bench"
TRIGGER_PREFIX = "trig-"
POLL_S = 0.01  # alarms and ingest probes alike: equal resolution keeps the ratio fair


def estop(seq: int, ts_ms: int) -> bytes:
    return orjson.dumps(
        {
            "ts": ts_ms,
            "seq": seq,
            "x": 1.0,
            "y": 2.0,
            "heading": 90.0,
            "speed": 0.0,
            "battery": 80.0,
            "state": "estop",
            "localization": 0.98,
        }
    )


@dataclass
class AlarmWatch:
    """When each trigger device's alarm was first seen in the table and on MQTT."""

    url: str
    port: int
    stored: dict[str, float] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_: c.subscribe(alarm_filter("f5g/v1", PROJECT), 1)
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # The rules service owns the alarm topic layout; find the trigger device in it.
        for level in msg.topic.split("/"):
            if level.startswith(TRIGGER_PREFIX):
                self.published.setdefault(level, time.time())

    def _poll(self) -> None:
        conn: Any = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.url)
                    conn.autocommit = True
                wall = time.time()
                cur = conn.cursor()
                cur.execute(
                    "SELECT device_id FROM alarms WHERE project_id = %s AND device_id LIKE %s",
                    (PROJECT, TRIGGER_PREFIX + "%"),
                )
                for (device,) in cur.fetchall():
                    self.stored.setdefault(device, wall)
            except psycopg2.Error:
                conn = None
            self._stop.wait(POLL_S)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()


def run_rules(
    env: BenchEnv, work: Workload, log_dir: Path, triggers_per_s: float = 10.0
) -> RunResult:
    url = env.new_database()
    broker = env.new_broker()
    run_id = uuid.uuid4().hex[:6]
    common = {
        "F5G_DATABASE__URL": url,
        "F5G_MQTT__PORT": str(broker.port),
        "F5G_LOG_LEVEL": "WARNING",
    }
    ingest = Ingestor("ingest", INGESTORS["ingest"], common, log_dir / "rules-ingest.log")
    rules = Ingestor(
        "rules",
        RULES_COMMAND,
        {
            **common,
            "F5G_RULES__CLIENT_ID": f"bench-rules-{run_id}",
            "F5G_RULES__METRICS_PORT": str(free_port()),
        },
        log_dir / "rules.log",
    )
    result = RunResult("ingest+rules", {**work.__dict__, "faults": []})
    watch = AlarmWatch(url, broker.port)
    per_process = min(work.probes_per_process, work.devices // work.processes)
    probes = [
        stored_device(work.stream, i, d)
        for i in range(work.processes)
        for d in device_names(i, per_process)
        if work.stream in SEQ_AUDITED
    ]
    observer = Observer(
        url,
        STREAM_TABLE[work.stream],
        PROJECT,
        probes,
        ROWS_PER_RECORD[work.stream],
        poll_s=POLL_S,
        since=time.time(),
    )
    try:
        ingest.start()
        rules.start()
        if not wait_ready(observer, broker.port, work.stream):
            raise RuntimeError("ingest did not become ready:\n" + ingest.log_tail())
        watch.start()
        warm = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        warm.connect("127.0.0.1", broker.port)
        warm.loop_start()
        ok = False
        for i in range(60):  # rules is ready once a warm-up e-stop turns into an alarm
            dev = f"{TRIGGER_PREFIX}warm{i}"
            warm.publish(topic(PROJECT, "agv", dev), estop(1, int(time.time() * 1000)), qos=1)
            if wait_until(lambda d=dev: d in watch.stored and d in watch.published, 1.0):  # type: ignore[misc]
                ok = True
                break
        if not ok:
            raise RuntimeError("rules raised no alarm for a warm-up e-stop:\n" + rules.log_tail())
        fleet = Fleet(work.fleet(broker.port, f"rules-{run_id}"))
        committed = CommittedCounter(ingest.metrics, observer.count())
        if committed.available:  # count(*) each second would load the database instead
            observer.sampler = committed
        observer.start()
        meter = CpuMeter(_server_pids(env, broker, ingest, rules)).start()
        fleet.start()
        sent: dict[str, float] = {}
        t0 = time.time()
        n = 0
        rss: list[list[float]] = []
        print(f"[rules] {work.rate:,.0f} msg/s background, {triggers_per_s:g} e-stops/s ...")
        while not fleet.done:
            fleet.poll(0.02)
            now = time.time()
            while n < (now - t0) * triggers_per_s and now - t0 < work.duration_s:
                n += 1
                dev = f"{TRIGGER_PREFIX}{n:06d}"
                ts_ms = int(time.time() * 1000)
                warm.publish(topic(PROJECT, "agv", dev), estop(1, ts_ms), qos=1)
                sent[dev] = ts_ms / 1000.0
            if not rss or now - rss[-1][0] >= 1.0:
                rss.append([now, float(rules.rss())])
                print(
                    f"[rules] t={now - t0:5.1f}s sent={fleet.sent:>9} triggers={n} "
                    f"alarms={sum(1 for d in sent if d in watch.stored and d in watch.published)}"
                )
        totals = fleet.join()
        meter.stop()
        wait_until(lambda: all(d in watch.stored and d in watch.published for d in sent), 15.0)
        observer.stop()
        commit_lat = [lat for _, lat in observer.latencies]
        warm.loop_stop()
        warm.disconnect()
        watch.stop()
        lat = [
            max(watch.stored[d], watch.published[d]) - t
            for d, t in sent.items()
            if d in watch.stored and d in watch.published
        ]
        lat_db = [watch.stored[d] - t for d, t in sent.items() if d in watch.stored]
        lat_mqtt = [watch.published[d] - t for d, t in sent.items() if d in watch.published]
        alarm = stats.latency_figures(lat)
        commit = stats.latency_figures(commit_lat)
        result.summary = {
            "messages_published": totals.messages,
            "publish_target_msgs_per_s": work.rate,
            "publish_achieved_msgs_per_s": totals.achieved_rate,
            "target_reached": totals.achieved_rate >= stats.RATE_TOLERANCE * work.rate,
            "triggers": len(sent),
            "alarms_missing": len(sent) - len(lat),
            "alarm_latency": alarm,
            "ingest_commit_latency": commit,
            "alarm_to_commit_p50_ratio": stats.ratio(alarm["p50_ms"], commit["p50_ms"]),
            "alarm_to_commit_p99_ratio": stats.ratio(alarm["p99_ms"], commit["p99_ms"]),
            "alarm_stored_latency": stats.latency_figures(lat_db),
            "alarm_published_latency": stats.latency_figures(lat_mqtt),
            "latency_resolution_s": POLL_S,
            "rules_rss_max_mb": max((v for _, v in rss), default=0.0) / 2**20,
            "cpu": cpu_profile(meter),
        }
        result.series = {
            "published": [[t, float(s)] for t, s, _ in totals.samples],
            "latency": [
                [
                    max(watch.stored[d], watch.published[d]),
                    max(watch.stored[d], watch.published[d]) - t,
                ]
                for d, t in sent.items()
                if d in watch.stored and d in watch.published
            ],
            "rss": rss,
            "commit_latency": [[t, x] for t, x in observer.latencies],
        }
        return result
    finally:
        watch._stop.set()
        observer.stop()
        rules.stop()
        ingest.stop()


def _server_pids(
    env: BenchEnv, broker: Mosquitto, ingest: Ingestor, rules: Ingestor
) -> dict[str, int]:
    pids = {"ingest": ingest.pid, "rules": rules.pid, "broker": broker.pid()}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids["database"] = int((env.pg.data_dir / "postmaster.pid").read_text().split()[0])
    return {k: v for k, v in pids.items() if v}


def cpu_profile(meter: CpuMeter) -> dict[str, Any]:
    """Cores each server used while the fleet published, and the rest of the machine
    (publishers, this harness, anything else): where a slow run's time went."""
    wall = max(meter.wall_s, 1e-9)
    cores = {k: v / wall for k, v in meter.used.items()}
    busy = meter.machine_busy_s / wall
    cores["publishers, harness and other"] = max(0.0, busy - sum(cores.values()))
    total = meter.machine_total_s / wall
    # Busy and total are differences of tick sums turned into floats: on a machine with no
    # idle tick at all their ratio came out as 1.0000000000007.
    share = min(1.0, busy / total)
    return {"wall_s": meter.wall_s, "cores_used": cores, "machine_busy_share": share}
