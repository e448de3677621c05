"""The drain benchmark counts right: the filler queues exactly N, a drain finds every row,
a lost record is counted lost (issue 21, loadtests/drain.py).

Backlogs are small (hundreds to a few thousand messages) on the session's real PostgreSQL
and a broker of each test's own; the figures of a real run come from `factory5g bench
ingest-drain`, not from here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from f5gdev.devstack.servers import Postgres
from loadtests import report
from loadtests.drain import (
    C_CLIENT_ID,
    COMPETENT,
    Drainer,
    Variant,
    drain_c,
    figures,
    references,
    register_c,
    run,
)
from loadtests.filler import fill
from loadtests.procs import INGESTORS
from loadtests.runner import BenchEnv
from loadtests.scenarios import SCENARIOS


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
