"""The load-test harness counts right: a lossless run balances, a dropped record is lost.

Runs are tiny (a few hundred messages) against the session's real PostgreSQL and a broker
of each run's own, with the naive baseline as the ingestor under test, because its loss
can be caused on purpose (`F5G_BENCH_DROP`) without faking anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from loadtests import report, stats
from loadtests.payloads import (
    ROWS_PER_RECORD,
    STREAMS,
    PayloadMaker,
    make_format,
    stored_device,
    topic,
)
from loadtests.procs import INGESTORS, rss_bytes
from loadtests.publisher import PublisherConfig, _publish
from loadtests.runner import (
    BenchEnv,
    Fault,
    RunResult,
    Workload,
    broker_dropped,
    run_workload,
)
from loadtests.scenarios import SCENARIOS
from services.core.contracts import decode, parse_topic
from services.core.settings import load_settings

TINY = Workload(
    stream="link",
    devices=6,
    processes=2,
    rate=300.0,
    duration_s=2.0,
    warmup_s=0.5,
    drain_s=20.0,
    stall_s=3.0,
)


@pytest.fixture(scope="module")
def env(pg: Postgres, stack_tmp: Path) -> Iterator[BenchEnv]:
    with BenchEnv(base=stack_tmp / "bench", pg=pg) as bench:
        yield bench


@pytest.fixture(scope="module")
def lossless(env: BenchEnv, stack_tmp: Path) -> RunResult:
    return run_workload(
        env, "naive", INGESTORS["naive"], TINY, stack_tmp / "bench-logs", progress=lambda _: None
    )


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("batch", [1, 3])
def test_payloads_obey_the_contract_and_carry_seq_and_publish_time(stream: str, batch: int) -> None:
    maker = PayloadMaker(stream, "dev-1", batch=batch)
    payload = maker.render(41, 1_700_000_000_123)
    decoded = decode(stream, payload)
    assert [r.seq for r in decoded.records] == list(range(41, 41 + batch))
    assert all(r.ts == 1_700_000_000_123 for r in decoded.records)
    assert parse_topic(topic("bench", stream, "dev-1")).stream == stream


def test_vda5050_and_sparkplug_payloads_decode_through_the_ingest_adapters() -> None:
    from services.protocols.adapters.sparkplug import create_adapter as sparkplug_adapter
    from services.protocols.adapters.vda5050 import create_adapter as vda_adapter

    now = datetime.now(UTC)
    settings = load_settings(ingest={"vda5050_default_project": "bench"})
    vda = make_format("vda5050", "bench", 0, ["d00-00000"], 1, 0)
    result = vda_adapter(settings).decode(vda.topics[0], vda.render(0, 7, 1_795_000_000_123), now)
    ((t, decoded),) = result.items
    assert (t.project, t.device) == ("bench", stored_device("vda5050", 0, "d00-00000"))
    assert decoded.records[0].seq == 7
    assert decoded.records[0].ts == 1_795_000_000_123

    adapter = sparkplug_adapter(settings)
    spb = make_format("sparkplug", "bench", 3, ["d03-00000"], 1, 0)
    for birth_topic, birth in spb.births():
        adapter.decode(birth_topic, birth, now)
    result = adapter.decode(spb.topics[0], spb.render(0, 1, 1_795_000_000_123), now)
    ((t, decoded),) = result.items
    assert t.device == stored_device("sparkplug", 3, "d03-00000")
    assert len(decoded.records[0].metrics) == ROWS_PER_RECORD["sparkplug"]
    assert result.commands == []  # no seq gap, no unknown alias: no rebirth request


def test_payload_of_a_single_link_record_is_about_200_bytes() -> None:
    size = len(PayloadMaker("link", "d00-00001").render(123456, 1_700_000_000_123))
    assert 170 <= size <= 260


def test_lossless_run_stores_exactly_what_was_acknowledged(lossless: RunResult) -> None:
    audit, summary = lossless.audit, lossless.summary
    assert summary["messages_published"] > 300
    assert audit["published_records"] == summary["messages_published"]
    assert audit["acked_records"] == audit["published_records"]
    assert audit["stored_records"] == audit["acked_records"]
    assert audit["lost"] == 0
    assert audit["duplicated_rows"] == 0
    assert audit["unexpected"] == 0
    assert audit["drained"] is True
    assert summary["latency_steady"]["samples"] > 0
    assert 0 < summary["latency_steady"]["p50_ms"] < 5000
    assert summary["rss_max_mb"] > 5


def test_dropped_record_is_reported_as_lost(env: BenchEnv, stack_tmp: Path) -> None:
    result = run_workload(
        env,
        "naive",
        INGESTORS["naive"],
        TINY,
        stack_tmp / "bench-logs",
        progress=lambda _: None,
        extra_env={"F5G_BENCH_DROP": "d01-00002:3"},
    )
    assert result.audit["drain"] == "stalled"
    assert result.audit["lost"] == 1
    assert result.audit["lost_examples"] == ["d01-00002:3"]
    assert result.audit["stored_records"] == result.audit["acked_records"] - 1


def test_report_has_targets_figures_and_plots(lossless: RunResult, tmp_path: Path) -> None:
    scenario = SCENARIOS["ingest-latency"]
    doc = report.build_result(scenario, [lossless.as_dict()], "now", 1.0, [])
    out = report.write(doc, tmp_path)
    data = json.loads((out / "result.json").read_text())
    assert data["runs"][0]["audit"]["lost"] == 0
    md = (out / "report.md").read_text()
    assert "p99 publish-to-commit (ms)" in md
    assert "publish achieved msgs/s" in md
    for png in ("throughput.png", "latency.png", "memory.png"):
        assert (out / png).stat().st_size > 1000
    assert out.name in (tmp_path / "latest.md").read_text()


def test_fixed_rate_run_that_falls_short_says_so(lossless: RunResult) -> None:
    run: dict[str, Any] = lossless.as_dict()
    target = next(t for t in SCENARIOS["ingest-latency"].targets if t.path.endswith("reached"))
    assert target.check(run) is True
    run["summary"] = {**run["summary"], "target_reached": False}
    assert target.check(run) is False


def test_percentiles_and_slopes() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 99) == 99
    assert math.isnan(stats.percentile([], 99))
    assert stats.slope_per_min([(0.0, 0.0), (60.0, 1.0), (120.0, 2.0)]) == pytest.approx(1.0)
    assert stats.interpolate([(0.0, 0.0), (10.0, 100.0)], 2.5) == 25.0


def test_rss_of_this_process_is_measured() -> None:
    import os

    assert rss_bytes(os.getpid()) > 10 * 2**20
    assert rss_bytes(2**22 + 7) == 0


def test_broker_restart_fault_is_survived_and_counted(env: BenchEnv, stack_tmp: Path) -> None:
    # The baseline reconnects with paho's backoff (1 s, 2 s, 4 s, ...) after the restart; on
    # a loaded machine that outlasts TINY's 3 s stall window, which then judged 863 records
    # still on their way as lost. A longer window still ends the run when nothing arrives.
    work = dataclasses.replace(
        TINY, duration_s=4.0, stall_s=15.0, faults=(Fault("broker-restart", 1.5, 0.5),)
    )
    result = run_workload(
        env, "naive", INGESTORS["naive"], work, stack_tmp / "bench-logs", progress=lambda _: None
    )
    assert [f["kind"] for f in result.faults] == ["broker-restart"]
    assert result.audit["lost"] == 0
    assert result.audit["stored_records"] >= result.audit["acked_records"] > 600


def test_real_ingest_run_is_counted_like_the_baseline(env: BenchEnv, stack_tmp: Path) -> None:
    result = run_workload(
        env, "ingest", INGESTORS["ingest"], TINY, stack_tmp / "bench-logs", progress=lambda _: None
    )
    assert result.audit["acked_records"] == result.summary["messages_published"] > 300
    assert result.audit["lost"] == 0
    assert result.audit["stored_records"] == result.audit["acked_records"]
    assert "factory5g_ingest" in " ".join(result.metrics)


def test_acks_without_any_subscriber_are_told_apart(new_broker: Callable[[], Mosquitto]) -> None:
    broker = new_broker()
    ticks: Any = multiprocessing.get_context("spawn").Queue()
    cfg = PublisherConfig(0, "127.0.0.1", broker.port, "bench", "link", 4, 200.0, 1, 0.5)
    result = _publish(cfg, ticks)
    assert result.messages > 50
    assert result.acked == result.messages
    assert result.no_subscribers == result.acked


def test_a_publisher_whose_connack_is_lost_connects_again(stack_tmp: Path) -> None:
    """A broker restart between a publisher's TCP connect and its CONNACK (as a loaded
    machine's slow-starting publisher meets `fault-broker-restart`) must not leave it waiting
    for that CONNACK forever: here the first connection is closed unanswered, then a real
    broker comes up on the same port, and the publisher connects to it and publishes."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    closed = threading.Event()

    def close_first() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)  # the CONNECT
        conn.close()
        listener.close()
        closed.set()

    threading.Thread(target=close_first, daemon=True).start()
    ticks: Any = multiprocessing.get_context("spawn").Queue()
    cfg = PublisherConfig(0, "127.0.0.1", port, "bench", "link", 4, 200.0, 1, 0.5, ack_wait_s=60)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(_publish(cfg, ticks)), daemon=True)
    worker.start()
    assert closed.wait(30), "the publisher never connected"
    broker = Mosquitto(stack_tmp / f"mosquitto-{uuid.uuid4().hex[:8]}", port=port)
    broker.start()
    try:
        worker.join(90)
        assert not worker.is_alive(), "the publisher still waits for the lost CONNACK"
        (result,) = outcome
        assert result.messages > 50
        assert result.acked == result.messages
    finally:
        broker.stop()


def test_rules_alarm_latency_is_measured_per_trigger(env: BenchEnv, stack_tmp: Path) -> None:
    from loadtests.rules_bench import run_rules

    work = dataclasses.replace(TINY, duration_s=2.0, rate=200.0)
    result = run_rules(env, work, stack_tmp / "bench-logs", triggers_per_s=5.0)
    summary = result.summary
    assert summary["triggers"] == 10
    assert summary["alarms_missing"] == 0
    assert summary["alarm_latency"]["samples"] == 10
    assert 0 < summary["alarm_latency"]["p99_ms"] < 10_000
    # The same run's ingest reference: probe records of the background fleet, committed.
    assert summary["ingest_commit_latency"]["samples"] > 0
    assert summary["alarm_to_commit_p99_ratio"] == pytest.approx(
        summary["alarm_latency"]["p99_ms"] / summary["ingest_commit_latency"]["p99_ms"]
    )
    # Where the machine's time went while publishing: every server, and the rest.
    cores = summary["cpu"]["cores_used"]
    assert {"ingest", "rules", "broker", "database"} <= set(cores)
    assert all(v >= 0 for v in cores.values())
    assert cores["ingest"] > 0
    assert 0 < summary["cpu"]["machine_busy_share"] <= 1


def test_committed_counter_follows_restarts_of_the_ingestor() -> None:
    from loadtests.observer import CommittedCounter

    samples = iter([10.0, 25.0, 40.0, 5.0, 12.0])
    metric = 'factory5g_ingest_rows_written_total{stream="link"}'
    counter = CommittedCounter(lambda: {metric: next(samples)}, base_rows=100)
    assert counter.available
    assert counter() == 115  # 25 - 10 since the start
    assert counter() == 130
    assert counter() == 135  # restarted at 0: 40 - 10 before, plus 5 since
    assert counter() == 142
    assert not CommittedCounter(dict, base_rows=0).available


def test_messages_the_broker_drops_at_its_queue_limit_are_counted(stack_tmp: Path) -> None:
    # A session whose queue holds 5 messages, away while 30 are published: the broker
    # acknowledges all 30 and drops 25, which a report must attribute to the broker.
    server = Mosquitto(
        stack_tmp / f"mosquitto-{uuid.uuid4().hex[:8]}",
        port=free_port(),
        extra_config="sys_interval 1\nmax_queued_messages 5",
    )
    server.start()
    try:
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="away", clean_session=False)
        sub.connect("127.0.0.1", server.port)
        sub.loop_start()
        sub.subscribe("q/t", qos=1)
        time.sleep(0.5)  # SUBACK
        sub.loop_stop()
        sub.disconnect()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub")
        pub.connect("127.0.0.1", server.port)
        pub.loop_start()
        infos = [pub.publish("q/t", b"x", qos=1) for _ in range(30)]
        for info in infos:
            info.wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        time.sleep(1.5)  # one $SYS interval
        assert broker_dropped(server.port) == 25
        assert broker_dropped(free_port(), timeout_s=0.5) is None  # nothing listening
    finally:
        server.stop()


# ---------------------------------------------------------------- CPU shares and references

BURN = (
    "import sys, time\n"
    "while time.process_time() < float(sys.argv[1]):\n"
    "    pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_stat_fields_are_counted_after_the_command_name() -> None:
    from loadtests.procs import parse_machine_cpu, parse_stat_cpu

    # A command name with spaces and parentheses must not shift utime/stime/cutime/cstime.
    line = "4242 (we(ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0"
    assert parse_stat_cpu(line, ticks=100) == (3.0, 0.5)
    stat = "cpu  100 10 50 800 40 5 5 0 0 0\ncpu0 50 5 25 400 20 2 3 0 0 0\n"
    busy, total = parse_machine_cpu(stat, ticks=100)
    assert (busy, total) == (1.7, 10.1)  # idle and iowait are not busy


def test_cpu_of_a_process_tree_and_of_an_exited_generator_is_counted() -> None:
    import subprocess
    import sys

    from loadtests.procs import CpuMeter, cpu_seconds, run_measured

    # A child that burns 0.4 s of CPU under a shell parent: the tree's time includes it.
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f'"{sys.executable}" -c "$0" 0.4', BURN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    meter = CpuMeter({"tree": proc.pid}).start()
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "burnt"
    meter.stop()
    # /proc counts in clock ticks (10 ms): allow a few of them.
    assert cpu_seconds(proc.pid) >= 0.35
    assert meter.used["tree"] >= 0.3  # what it burnt after the meter started
    assert meter.machine_total_s > 0
    proc.communicate("\n", timeout=30)
    assert cpu_seconds(proc.pid) == 0.0  # gone: nothing to read

    # A generator that has exited is measured by wait4, whole.
    rc, out, _err, cpu = run_measured(
        ["/bin/sh", "-c", f'echo | "{sys.executable}" -c "$0" 0.3', BURN], timeout=60
    )
    assert rc == 0
    assert out.strip() == "burnt"
    assert cpu >= 0.28


def test_a_run_the_generator_bounded_is_told_apart() -> None:
    from loadtests.stats import load_limit

    # wrk on 2 threads with both busy for the whole run: saturated.
    saturated = load_limit(10.0, 2, 19.0, 2, 5.0, 1.0)
    assert saturated["limit"] == "client"
    assert "saturated" in saturated["reason"]
    # A Python client using as much CPU as the API it loads: the client's figure.
    greedy = load_limit(10.0, 2, 8.0, 1, 7.5, 3.0)
    assert greedy["limit"] == "client"
    assert greedy["cpu_share"]["generator"] == pytest.approx(8.0 / 18.5)
    # wrk at a sixth of the API's CPU: the server's figure.
    server = load_limit(10.0, 2, 1.5, 2, 9.5, 3.0, machine_busy_s=14.5)
    assert server["limit"] == "server"
    assert server["cores_used"]["api"] == pytest.approx(0.95)
    assert server["other_cores_used"] == pytest.approx(0.05)
    assert "other processes" not in server["reason"]
    # The same with other processes keeping most of a core busy: said, not hidden.
    shared = load_limit(10.0, 2, 1.5, 2, 9.5, 3.0, machine_busy_s=19.9)
    assert shared["limit"] == "server"
    assert "other processes kept 0.59 of 2 cores busy" in shared["reason"]
    # Without a database figure (a given database URL) the shares are of what was measured.
    assert set(load_limit(10.0, 2, 1.0, 2, 4.0)["cpu_share"]) == {"generator", "api"}


def test_ratios_to_references_and_no_server_figure_from_a_client_bound_run() -> None:
    from loadtests.bench_api import derive
    from loadtests.stats import load_limit, ratio

    assert ratio(300.0, 20.0) == 15.0
    for bad in (None, math.nan, 0.0, -1.0):
        assert ratio(bad, 20.0) is None
        assert ratio(20.0, bad) is None

    def lat(p95: float) -> dict[str, float]:
        return {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.2, "n": 20.0}

    def load(rps: float, gen: float, api: float) -> dict[str, Any]:
        return {"rps": rps, "tool": "wrk", **load_limit(10.0, 2, gen, 2, api, 2.0)}

    figures = {
        "latency_ms": {
            "kpi_24h": lat(20.0), "raw_kpi_24h": lat(400.0),
            "kpi_full": lat(40.0), "raw_kpi_full": lat(3000.0),
            "series_full": lat(8.0), "raw_series_full": lat(80.0),
        },
        "load": {"healthz": load(7000.0, 1.5, 9.0), "devices": load(1500.0, 0.5, 9.0)},
    }  # fmt: skip
    d = derive(figures)
    assert d["kpi_24h_speedup"] == 20.0
    assert d["kpi_full_speedup"] == 75.0
    assert d["series_full_speedup"] == 10.0
    assert d["devices_to_healthz"] == pytest.approx(1500 / 7000)
    assert d["generator_limited"] == []

    # The same list figure from a client that burnt as much CPU as the API: not reported.
    figures["load"]["devices"] = load(159.0, 9.0, 6.0)
    d = derive(figures)
    assert d["devices_rps"] is None
    assert d["devices_to_healthz"] is None
    assert d["generator_limited"] == ["devices"]


def test_wrk_output_is_parsed_and_errors_refused() -> None:
    from loadtests.bench_api import parse_wrk

    ok = (
        "Running 10s test @ http://127.0.0.1:1/healthz\n  2 threads and 32 connections\n"
        "  17030 requests in 10.00s, 2.6MB read\nRequests/sec:   1703.05\n"
    )
    assert parse_wrk(ok) == 1703.05
    with pytest.raises(RuntimeError, match="wrk failed"):
        parse_wrk(ok + "  Non-2xx or 3xx responses: 12\n")
    with pytest.raises(RuntimeError, match="wrk failed"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_api_report_states_ratios_references_and_the_generator_verdict(tmp_path: Path) -> None:
    from loadtests.bench_api import REFERENCES, derive
    from loadtests.stats import load_limit

    figures: dict[str, Any] = {
        "latency_ms": {
            name: {"p50": v, "p95": v, "p99": v, "n": 5.0}
            for name, v in (
                ("kpi_24h", 20.0), ("raw_kpi_24h", 400.0), ("kpi_full", 40.0),
                ("raw_kpi_full", 3000.0), ("series_full", 8.0), ("raw_series_full", 80.0),
            )
        },
        "load": {
            "healthz": {"rps": 7000.0, "tool": "wrk", "connections": 32, "seconds": 10.0,
                        **load_limit(10.0, 2, 1.5, 2, 9.0, 0.1)},
            "devices": {"rps": 159.0, "tool": "asyncio client", "connections": 32,
                        "seconds": 10.0, **load_limit(10.0, 2, 9.0, 1, 6.0, 2.0)},
        },
    }  # fmt: skip
    derived = derive(figures)
    machine = {**report.machine(), "load_avg_at_start": [0.5, 0.4, 0.3]}
    doc = report.build_result(
        SCENARIOS["api"], [], "2026-12-01T21:30:00+00:00", 60.0, [],
        machine_info=machine, figures=derived,
    )  # fmt: skip
    doc["references"] = [
        {"label": label, "value": derived[fig], "unit": unit, "reference": ref_label,
         "reference_value": derived[ref], "ratio": derived[rk], "ratio_of": meaning}
        for label, fig, unit, ref_label, ref, rk, meaning in REFERENCES
    ]  # fmt: skip
    doc["load"] = figures["load"]
    out = report.write(doc, tmp_path)
    md = (out / "report.md").read_text()
    assert "load average at start [0.5, 0.4, 0.3]" in md  # taken at the start, not the end
    targets = {t["path"]: t for t in doc["targets"]}
    assert targets["kpi_24h_speedup"]["value"] == 20.0
    assert targets["kpi_24h_speedup"]["met"] is True
    assert targets["devices_to_healthz"]["met"] is None  # client-bound: not measured
    absolute = {t["path"]: t for t in doc["absolute"]}
    assert absolute["kpi_24h_p95_ms"]["value"] == 20.0
    assert "| KPI summary 24 h p95 | 20.0 ms | raw SQL p95 | 400.0 ms | 20.00 (raw / API) |" in md
    assert "| device list req/s / /healthz req/s | docs/benchmarks.md | >= 0.13 | n/a |" in md
    assert "**client**: the generator used 0.90 of its 1 thread(s)' time" in md
    assert "## Absolute figures (this machine)" in md
    assert "| KPI 24 h: raw SQL p95 / API p95 | docs/benchmarks.md | >= 7 |" in md
    assert (report._bound(1.25), report._bound(25_000.0)) == ("1.25", "25,000")
    latest = (tmp_path / "latest.md").read_text()
    assert "| 3/4 (1 not measured) |" in latest


async def test_raw_sql_reference_computes_what_the_kpi_summary_computes(
    new_database: Callable[..., str],
) -> None:
    import asyncpg

    from f5gdev.seed.generate import SeedPlan, default_end, seed
    from loadtests import reference_sql
    from services.api.app import make_engine
    from services.api.kpis.service import project_kpis
    from services.api.params import TimeRange
    from services.api.rollups import maintain
    from services.core import db

    url = new_database()
    end = default_end()
    await seed(url, SeedPlan(2, 16, 2, 288, end))
    engine = make_engine(load_settings(database={"url": url}))
    conns = [await asyncpg.connect(db.asyncpg_dsn(url)) for _ in range(5)]
    try:
        await maintain.catch_up(engine)
        # A range with ragged edges, so the API mixes raw rows, minutes and hours.
        start = end - timedelta(hours=30, minutes=7, seconds=13)
        stop = end - timedelta(minutes=3, seconds=29)
        api = await project_kpis(engine, "p1", TimeRange(start, stop))
        raw = await reference_sql.kpis(conns, "p1", start, stop)
    finally:
        for c in conns:
            await c.close()
        await engine.dispose()
    insp, agv, link = api["inspection"], api["agv"], api["link"]
    assert insp["inspections"] == raw["inspection"]["inspections"] > 0
    assert insp["failed"] == raw["inspection"]["failed"]
    assert insp["top_defects"] == raw["top_defects"]
    assert agv["samples"] == raw["agv"]["samples"] > 0
    assert agv["agvs"] == raw["agv"]["agvs"]
    assert agv["e_stops"] == raw["agv"]["e_stops"]
    assert agv["state_share"]["moving"] == pytest.approx(
        raw["agv"]["moving_n"] / raw["agv"]["samples"]
    )
    assert agv["mean_battery_pct"] == pytest.approx(raw["agv"]["mean_battery_pct"])
    assert link["samples"] == raw["link"]["samples"] > 0
    assert link["modules"] == raw["link"]["modules"]
    assert link["mean_rsrp_dbm"] == pytest.approx(raw["link"]["mean_rsrp_dbm"])
    assert link["rsrp_bands"]["good"] == pytest.approx(
        raw["link"]["rsrp_good"] / raw["link"]["samples"]
    )


def test_missing_wrk_is_installed_by_the_script_or_the_fallback_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil

    from loadtests.bench_api import INSTALL_TOOLS, ensure_wrk

    assert INSTALL_TOOLS.exists()
    # No wrk on PATH and an installer that fails: the run goes on, saying why.
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("bash", "chmod"):  # what the installers below need, and no wrk
        found = shutil.which(tool)
        assert found is not None
        (empty / tool).symlink_to(found)
    failing = tmp_path / "install.sh"
    failing.write_text("echo 'E: Unable to locate package wrk' >&2\nexit 100\n")
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("wrk") is None
    path, why = ensure_wrk(failing)
    assert path is None
    assert why == "installing wrk failed (E: Unable to locate package wrk); asyncio client instead"
    # An installer that provides it: found on PATH afterwards and used.
    providing = tmp_path / "provide.sh"
    providing.write_text(f"printf '#!/bin/sh\\n' > {empty}/wrk && chmod +x {empty}/wrk\n")
    path, why = ensure_wrk(providing)
    assert path == os.path.join(empty, "wrk")
    assert why == "wrk"


def test_failover_figures_find_the_first_commit_on_the_new_primary() -> None:
    """Time to the first commit is the first count above the count at promotion; p99 covers
    the fault to EVENT_TAIL_S after that commit, not the quiet time around it."""
    from loadtests.observer import Observer
    from loadtests.runner import EVENT_TAIL_S, failover_figures

    obs = Observer("postgresql://unused@127.0.0.1:1/x", "link_kpis", "bench", [])
    # Rows grow until the kill at t=10, stand still until t=31, grow again.
    obs.counts = [(float(t), min(t, 10) * 100 + max(0, t - 31) * 500) for t in range(60)]
    obs.latencies = [(5.0, 0.05), (12.0, 20.0), (32.0, 0.5), (31.0 + EVENT_TAIL_S + 5, 9.0)]
    record = {"kind": "db-failover", "wall": 10.0, "promoted_wall": 30.2}
    audit = {"acked_records": 5, "stored_records": 5, "lost": 0, "duplicated_rows": 0}
    f = failover_figures(record, obs, audit)
    assert f["promoted_after_s"] == 20.2
    assert f["first_commit_on_new_primary_s"] == 22.0  # the sample at t=32
    assert f["event_samples"] == 2
    assert f["p99_during_event_ms"] == 20_000
    assert (f["lost"], f["duplicated"]) == (0, 0)
