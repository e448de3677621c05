"""The drain benchmark counts right: the filler queues exactly N, a drain finds every row,
a lost record is counted lost (issue 21, loadtests/drain.py); the raw publisher counts its
acknowledgements, and a run its generator bounded says so instead of failing a target.

Backlogs are small (hundreds to a few thousand messages) on the session's real PostgreSQL
and a broker of each test's own; the figures of a real run come from `factory5g bench
ingest-drain`, not from here.
"""

from __future__ import annotations

import multiprocessing
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from f5gdev.devstack.servers import Postgres
from loadtests import report
from loadtests.drain import (
    C_CLIENT_ID,
    COMPETENT,
    Drainer,
    Variant,
    backlog_rows,
    drain_c,
    figures,
    references,
    register_c,
    run,
)
from loadtests.filler import fill, plan, render_slice
from loadtests.fleet import FleetTotals
from loadtests.procs import INGESTORS
from loadtests.publisher import PublisherConfig, PublisherResult, _publish_raw
from loadtests.runner import BenchEnv, Workload, run_workload
from loadtests.scenarios import SCENARIOS
from loadtests.stats import GENERATOR_HEADROOM, generator_figures
from services.core.settings import IngestSettings


@pytest.fixture(scope="module")
def env(pg: Postgres, stack_tmp: Path) -> Iterator[BenchEnv]:
    with BenchEnv(base=stack_tmp / "drain", pg=pg) as bench:
        yield bench


def test_filler_queues_exactly_the_backlog_in_a_persistent_session(env: BenchEnv) -> None:
    broker = env.new_broker()
    register_c(broker)
    filled = fill("127.0.0.1", broker.port, "link", "bench", 40, 3_001, processes=3, batch=2)
    assert filled.messages == filled.acked == 3_001
    assert sum(max(r.last_seq) > 0 for r in filled.results) == 3
    # 3,001 messages over 40 devices in 3 slices (14/13/13 devices), two records each.
    assert sum(sum(r.last_seq) for r in filled.results) == 3_001 * 2
    c = drain_c(broker, filled.messages, timeout_s=120)
    assert c["messages"] == 3_001
    assert c["msgs_per_s"] > 0
    # Nothing more was queued than was sent: a further message would be received here.
    extra = subprocess.run(
        [
            "mosquitto_sub",
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-c",
            "-i",
            C_CLIENT_ID,
            "-V",
            "mqttv5",
            "-x",
            "3600",
            "-t",
            "#",
            "-W",
            "2",
        ],
        capture_output=True,
        timeout=30,
    )
    assert extra.stdout == b""


def test_drain_times_ingest_and_the_baseline_and_finds_every_row(
    env: BenchEnv, stack_tmp: Path
) -> None:
    lines: list[str] = []
    result = run(
        env,
        Variant("link", 1, 0, devices=20),
        2_000,
        [
            Drainer("ingest", INGESTORS["ingest"]),
            Drainer("ingest x2", INGESTORS["ingest"], processes=2),
            Drainer("competent", COMPETENT, has_metrics=False),
        ],
        stack_tmp / "drain-logs",
        progress=lines.append,
    )
    for name in ("ingest", "ingest x2", "competent"):
        d = result["drains"][name]
        assert d["state"] == "complete", (name, d)
        assert (d["rows"], d["lost"], d["duplicated"]) == (2_000, 0, 0), (name, d)
        assert d["msgs_per_s"] > 0
        assert d["cpu_s"] > 0
        assert d["rss_max_mb"] > 10
    assert result["c"]["messages"] == 2_000
    fig = figures(result)
    assert fig["ratio_to_c"] == fig["ingest"]["msgs_per_s"] / result["c"]["msgs_per_s"]
    assert fig["multi"]["processes"] == 2
    assert fig["scaling"] > 0
    assert {r["ratio_of"] for r in references(fig)} >= {"ingest / C", "2 processes / 1"}
    doc = report.build_result(
        SCENARIOS["ingest-drain"], [], "now", 1.0, [], machine_info=report.machine(), figures=fig
    )
    doc["drain"] = fig
    text = report.render_markdown(doc, [])
    assert "| msg/s (including process start) |" in text
    verdicts = {t["label"]: t["met"] for t in doc["targets"]}
    assert verdicts["records lost"] is True
    assert verdicts["rows duplicated"] is True


def test_copy_ceiling_copies_the_backlogs_own_rows_and_reports_ingest_against_it(
    env: BenchEnv, stack_tmp: Path
) -> None:
    variant = Variant("link", 5, 0, devices=8, copy_ceiling=True)
    # The ceiling's rows are the backlog's: every device of every filler slice, with the
    # record seqs the filler sent, nothing more.
    table, rows = backlog_rows(variant, 201, 8, 2)
    assert table == "link_kpis"
    sent = set()
    for s in plan("", 0, "link", "bench", 8, 201, 2, 5):
        names, _, last = render_slice(s, 0)
        sent |= {
            (name, seq) for name, top in zip(names, last, strict=True) for seq in range(1, top + 1)
        }
    assert len(sent) == 201 * 5
    assert sorted((r[2], r[3]) for r in rows) == sorted(sent)
    assert {r[1] for r in rows} == {"bench"}

    lines: list[str] = []
    result = run(
        env,
        variant,
        201,
        [Drainer("ingest", INGESTORS["ingest"])],
        stack_tmp / "drain-logs",
        progress=lines.append,
        with_c=False,
    )
    ceiling = result["copy_ceiling"]
    assert (ceiling["rows"], ceiling["rows_stored"]) == (1_005, 1_005)
    assert ceiling["batches"] == 1  # ingest's default batch_max_rows is above 1,005
    # Also with as many connections as ingest has writers, each storing every row.
    writers = IngestSettings().writers
    assert [c["connections"] for c in ceiling["by_connections"]] == [1, writers]
    assert all(c["rows_stored"] == 1_005 for c in ceiling["by_connections"])
    assert ceiling["rows_per_s"] > 0
    assert ceiling["pg_cpu_us_per_row"] > 0
    assert result["drains"]["ingest"]["rows"] == 1_005
    fig = figures(result)
    assert fig["ratio_to_copy"] == fig["ingest"]["rows_per_s"] / ceiling["rows_per_s"]
    ratios = {r["ratio_of"] for r in references(fig)}
    assert {"ingest / COPY", f"ingest / COPY x{writers}", "COPY / ingest"} <= ratios
    doc = report.build_result(
        SCENARIOS["ingest-drain-arrays"],
        [],
        "now",
        1.0,
        [],
        machine_info=report.machine(),
        figures=fig,
    )
    doc["drain"] = fig
    text = report.render_markdown(doc, [])
    assert "COPY ceiling, no drainer" in text
    assert f"Ingest drained at {fig['ratio_to_copy']:.2f} of it." in text
    assert f"The same with {writers} connections" in text
    verdicts = {t["label"]: t["met"] for t in doc["targets"]}
    assert "rows/s drained" in verdicts  # the issue's absolute target stays in the report


def test_drain_counts_a_record_the_drainer_dropped_as_lost(env: BenchEnv, stack_tmp: Path) -> None:
    # The naive baseline skips exactly one record on request: a loss that really happened.
    naive = Drainer(
        "naive",
        INGESTORS["naive"],
        has_metrics=False,
        env={"F5G_BENCH_DROP": "d01-00003:2"},
    )
    result = run(
        env,
        Variant("link", 1, 0, devices=10),
        300,
        [naive],
        stack_tmp / "drain-logs",
        progress=lambda _: None,
        with_c=False,
        stall_s=5.0,
    )
    d = result["drains"]["naive"]
    assert d["state"] == "stalled"  # one row never comes
    assert (d["rows"], d["lost"], d["duplicated"]) == (299, 1, 0)


def test_a_crash_mid_drain_loses_nothing_from_ingest(env: BenchEnv, stack_tmp: Path) -> None:
    lines: list[str] = []
    result = run(
        env,
        Variant("link", 1, 0, devices=50),
        50_000,
        [Drainer("ingest", INGESTORS["ingest"])],
        stack_tmp / "drain-logs",
        progress=lines.append,
        crash_at=0.2,
        with_c=False,
    )
    d = result["drains"]["ingest"]
    assert d["crash"]["at_rows"] >= 10_000, lines
    assert (d["state"], d["lost"], d["duplicated"]) == ("complete", 0, 0)


def test_raw_publisher_counts_acks_and_subscriberless_acks(env: BenchEnv) -> None:
    broker = env.new_broker()
    ticks: Any = multiprocessing.get_context("spawn").Queue()
    cfg = PublisherConfig(
        0, "127.0.0.1", broker.port, "bench", "link", 4, 2_000.0, 1, 0.5, raw=True
    )
    result = _publish_raw(cfg, ticks)
    assert result.messages > 500
    assert result.acked == result.messages
    assert result.no_subscribers == result.acked  # nobody subscribed: reason 0x10 each
    assert sum(result.last_seq) == result.messages
    assert result.unacked == {}


def test_a_fast_generator_against_a_slow_ingestor_is_not_called_the_limit(
    env: BenchEnv, stack_tmp: Path
) -> None:
    # As fast as possible against the naive baseline (one INSERT per record): the raw
    # publishers offer far more than it commits, and every acknowledged record is counted.
    work = Workload(
        stream="link",
        devices=6,
        processes=2,
        rate=0.0,
        duration_s=2.0,
        warmup_s=0.5,
        drain_s=5.0,
        stall_s=3.0,
    )
    result = run_workload(
        env, "naive", INGESTORS["naive"], work, stack_tmp / "bench-logs", progress=lambda _: None
    )
    s = result.summary
    assert s["generator_offered_to_committed"] >= GENERATOR_HEADROOM, s
    assert s["generator_limited"] is False
    assert s["generator_cpu_s"] > 0
    assert result.audit["acked_records"] == s["messages_published"]
    assert result.audit["duplicated_rows"] == 0


def _totals(offered_per_s: float, seconds: float = 10.0) -> FleetTotals:
    messages = int(offered_per_s * seconds)
    r = PublisherResult(0, ["d"], [messages], messages, messages, started=0.0)
    r.publish_end, r.cpu_s = seconds, 0.95 * seconds
    return FleetTotals([r])


def test_a_throughput_miss_with_too_little_offered_reads_generator_was_the_limit() -> None:
    # The figures of issue 21's run: publishers reached 9,277 msg/s, ingest committed 9,167.
    fast = Workload(rate=0.0)
    limited = generator_figures(fast, _totals(9_277), 9_277, 9_167)
    assert limited["generator_limited"] is True
    assert limited["generator_busiest_process_cpu_share"] == pytest.approx(0.95)
    clear = generator_figures(fast, _totals(50_000), 50_000, 20_000)
    assert clear["generator_limited"] is False
    fixed = Workload(rate=10_000.0)
    assert generator_figures(fixed, _totals(9_000), 9_000, 9_000)["generator_limited"] is True
    assert generator_figures(fixed, _totals(10_000), 10_000, 10_000)["generator_limited"] is False

    scenario = SCENARIOS["ingest-throughput"]
    for fig, verdict in ((limited, None), (clear, False)):
        summary = {"committed_steady_msgs_per_s": 9_167.0, "rss_max_mb": 400.0, **fig}
        run = {"summary": summary, "audit": {}}
        doc = report.build_result(scenario, [run], "now", 1.0, [], machine_info={})
        t = next(t for t in doc["targets"] if t["label"] == "committed msgs/s (steady)")
        assert t["met"] is verdict
        assert (t.get("why") == report.GENERATOR_LIMIT) is (verdict is None)
        # A target the generator cannot excuse keeps its verdict.
        rss = next(t for t in doc["targets"] if "RSS" in t["label"])
        assert rss["met"] is False
