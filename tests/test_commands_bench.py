"""The commands benchmark's harness: wrk paces the POSTs, each command carries its send
time, and the report names what bounded the run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from loadtests.commands_bench import limit_verdict, parse_wrk_run, profile_summary, run, targets

WRK_OUT = """Running 3s test @ http://127.0.0.1:1
  1 threads and 8 connections
  120 requests in 3.00s, 50.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:     40.00
"""


def test_wrk_counts_are_read_from_its_summary() -> None:
    assert parse_wrk_run(WRK_OUT) == {"requests": 120, "non_2xx": 4, "socket_errors": 3}


def test_the_verdict_names_the_generator_then_the_devices_then_a_busy_machine() -> None:
    cores = {"api": 0.5, "commander": 0.3, "devices-k0": 0.1, "generator (wrk)": 0.9}
    v = limit_verdict(False, cores, 1, 10.0, 20.0)
    assert (v["limit"], v["generator_limited"]) == ("generator", True)
    cores["generator (wrk)"] = 0.05
    cores["devices-k0"] = 0.95
    assert limit_verdict(False, cores, 1, 10.0, 20.0)["devices_limited"]
    cores["devices-k0"] = 0.1
    cores["api"] = 0.97
    assert limit_verdict(False, cores, 1, 10.0, 20.0)["limit"] == "api"
    cores["api"] = 0.5
    busy = limit_verdict(False, cores, 1, 19.5, 20.0, 10.0)
    assert busy["limit"] == "machine"
    # 1.95 cores busy on 2, of which 0.95 this run's: the report says whose the rest was.
    assert "processes 0.95 of 2 cores" in busy["limit_reason"], busy
    assert "other work 1.00" in busy["limit_reason"], busy
    assert limit_verdict(True, cores, 1, 10.0, 20.0)["limit"] == "none"


@pytest.mark.parametrize("device_client", ["lean", "paho"])
def test_a_small_run_sends_at_the_rate_and_times_every_command_from_its_request(
    tmp_path: Path, device_client: str
) -> None:
    rate, duration = 40.0, 3.0
    # Connections enough for the schedule to hold while each answer takes up to 0.8 s (a
    # loaded CI machine): with 8, a run at load average 10 sent 90 of 120 requests on time.
    s = run(rate, 20, duration, 2, tmp_path, durable=False, connections=32, warm_up_s=1.0,
            device_client=device_client)  # fmt: skip
    # wrk's schedule: rate x duration requests, give or take those in flight at the end.
    assert s["requests_sent"] >= 0.9 * rate * duration, s
    assert s["non_2xx"] == s["socket_errors"] == 0, s
    # Every answered request made a command that carries its send time and completed.
    assert s["rows"] >= s["requests_sent"], s
    assert s["lost"] == 0, s
    assert s["sent_twice_rows"] == s["sent_twice_devices"] == 0, s
    f = s["request_to_accepted"]
    assert f["samples"] == s["rows"], f  # every command has its request -> accepted
    assert not math.isnan(f["p99_ms"]), f
    assert 0 < f["p50_ms"] <= f["p99_ms"] < 60_000, f
    assert s["cores_used"]["generator (wrk)"] < 0.5, s["cores_used"]
    # The CPU each process spent per command, the figure a busy machine disturbs least.
    per = s["cpu_ms_per_command"]
    assert min(per["api"], per["database"], per["commander"]) > 0, per
    assert len(s["load_avg_at_end"]) == 3, s
    # The at-rate warm-up ran first, under its own name: timed apart, not in the figures.
    warm = s["warm_up"]
    assert warm["requests"] >= 0.9 * rate * 1.0, warm
    assert warm["request_to_accepted"]["samples"] >= warm["requests"], warm
    # The services' full collections during the load are read from their /metrics.
    assert set(s["gc_full_collections"]) == {"api", "commander"}, s["gc_full_collections"]
    # The devices received every command once, whichever client they ran on.
    assert s["device_client"] == device_client
    # The machine's Python speed was timed before and after the load.
    assert all(ms > 0 for ms in s["python_speed_ms"]), s["python_speed_ms"]
    # The disk's flushes were probed beside the database through the load and its drain.
    assert s["disk_flush"]["samples"] >= duration / 0.05, s["disk_flush"]
    clear = s["request_to_accepted_clear_of_disk_stalls"]
    assert clear["samples"] <= f["samples"], clear
    if s["disk_flush"]["stalls"] == 0:  # nothing to leave out
        assert clear["samples"] == f["samples"], clear


def test_profile_summary_shares_leaves_and_our_innermost_frames() -> None:
    raw = (
        "<module> (services/cli.py:3);queue_command (/r/services/api/commands/service.py:90);"
        "fetchrow (/v/site-packages/asyncpg/connection.py:7) 3\n"
        "<module> (services/cli.py:3);dumps (/v/site-packages/orjson.py:1) 1\n"
    )
    s = profile_summary(raw)
    assert s["leaf"][0] == ("fetchrow (connection.py)", 0.75)
    assert s["services"][0] == ("queue_command (services/api/commands/service.py)", 0.75)
    assert s["services"][1] == ("<module> (services/cli.py)", 0.25)


def test_targets_are_in_the_form_latest_md_counts() -> None:
    summary = {
        "request_to_accepted": {"p99_ms": 180.0},
        "p99_met": True,
        "lost": 0,
        "sent_twice_devices": 0,
        "sent_twice_rows": 1,
        "requests_achieved_per_s": 480.0,
        "generator_reached_rate": False,
    }
    t = targets(summary, 500.0)
    assert [x["met"] for x in t] == [True, True, False, False]
    assert {"label", "value", "op", "bound", "met"} <= set(t[0])
    assert t[0]["bound"] == 200.0
