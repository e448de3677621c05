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
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
    work = dataclasses.replace(TINY, duration_s=4.0, faults=(Fault("broker-restart", 1.5, 0.5),))
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


def test_rules_alarm_latency_is_measured_per_trigger(env: BenchEnv, stack_tmp: Path) -> None:
    from loadtests.rules_bench import run_rules

    work = dataclasses.replace(TINY, duration_s=2.0, rate=200.0)
    result = run_rules(env, work, stack_tmp / "bench-logs", triggers_per_s=5.0)
    summary = result.summary
    assert summary["triggers"] == 10
    assert summary["alarms_missing"] == 0
    assert summary["alarm_latency"]["samples"] == 10
    assert 0 < summary["alarm_latency"]["p99_ms"] < 10_000


def test_api_benchmark_target_lines_are_parsed() -> None:
    from loadtests.cli import _TARGET_LINE

    hit = _TARGET_LINE.match("  kpi_24h_p95_ms               10.3  target 50  met")
    assert hit is not None
    assert hit.groups() == ("kpi_24h_p95_ms", "10.3", "50", "met")
    missed = _TARGET_LINE.match("  devices_rps                1200.0  target 1500  MISSED")
    assert missed is not None
    assert missed.group(4) == "MISSED"
    assert _TARGET_LINE.match("throughput (wrk, 32 connections, 3 s):") is None


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
