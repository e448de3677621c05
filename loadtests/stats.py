"""Turning a run's raw samples into the figures the targets name.

The steady window runs from `warmup_s` after the first publish to the end of publishing:
start-up and drain are reported separately so that a burst absorbed by the broker is not
mistaken for sustained throughput. A fixed-rate run whose publishers fell short of the
target says so (`target_reached: false`) instead of presenting the lower rate as achieved.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtests.fleet import FleetTotals
    from loadtests.observer import Observer
    from loadtests.runner import Workload

RATE_TOLERANCE = 0.97  # a fixed-rate run must publish at least this share of its target


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def interpolate(series: list[tuple[float, float]], t: float) -> float:
    """Value of a monotone step series at time t, linear between samples."""
    if not series:
        return 0.0
    times = [s[0] for s in series]
    i = bisect_left(times, t)
    if i <= 0:
        return series[0][1]
    if i >= len(series):
        return series[-1][1]
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope in units per minute; how a soak run shows growth."""
    if len(points) < 3:
        return math.nan
    n = len(points)
    mt = sum(p[0] for p in points) / n
    mv = sum(p[1] for p in points) / n
    var = sum((p[0] - mt) ** 2 for p in points)
    if var == 0:
        return math.nan
    return sum((p[0] - mt) * (p[1] - mv) for p in points) / var * 60


def latency_figures(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "samples": float(len(ms)),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "p999_ms": percentile(ms, 99.9),
        "max_ms": max(ms) if ms else math.nan,
    }


def summarise(
    work: Workload,
    totals: FleetTotals,
    observer: Observer,
    rss: list[list[float]],
    drained: bool,
    base_rows: int,
) -> dict[str, Any]:
    rows_per_msg = work.rows_per_message
    counts = sorted((t, float(c - base_rows)) for t, c in observer.counts)
    start, end = totals.started, totals.publish_end
    w0 = min(start + work.warmup_s, end)
    window = max(end - w0, 1e-9)
    published = sorted((t, float(s)) for t, s, _ in totals.samples)
    pub_steady = (interpolate(published, end) - interpolate(published, w0)) / window
    committed_steady = (interpolate(counts, end) - interpolate(counts, w0)) / window / rows_per_msg
    stored_msgs = counts[-1][1] / rows_per_msg if counts else 0.0
    done_at = next((t for t, c in counts if c >= totals.acked * rows_per_msg), None)
    steady_lat = [lat for seen, lat in observer.latencies if w0 <= seen - lat <= end]
    all_lat = [lat for _, lat in observer.latencies]
    rss_mb = [(t, v / 2**20) for t, v in rss if v > 0]
    late_rss = [(t, v) for t, v in rss_mb if t >= w0]
    lag = [
        (t, interpolate(sorted((a, float(b)) for a, _, b in totals.samples), t) - c / rows_per_msg)
        for t, c in counts
        if w0 <= t <= end
    ]
    target = work.rate
    summary: dict[str, Any] = {
        "messages_published": totals.messages,
        "messages_acked": totals.acked,
        "records_per_message": work.batch,
        "rows_per_message": rows_per_msg,
        "publish_target_msgs_per_s": target or None,
        "publish_achieved_msgs_per_s": totals.achieved_rate,
        "publish_steady_msgs_per_s": pub_steady,
        "target_reached": (totals.achieved_rate >= RATE_TOLERANCE * target) if target else None,
        "committed_steady_msgs_per_s": committed_steady,
        "committed_steady_rows_per_s": committed_steady * rows_per_msg,
        # Kept up: everything acknowledged was stored soon after publishing stopped.
        "keeping_up": done_at is not None and done_at - end <= max(2.0, 0.05 * (end - start)),
        "messages_stored": stored_msgs,
        "drained": drained,
        "drain_after_publish_s": (done_at - end) if done_at is not None else None,
        "overall_committed_msgs_per_s": (
            stored_msgs / (done_at - start) if done_at is not None and done_at > start else None
        ),
        "latency_steady": latency_figures(steady_lat),
        "latency_all": latency_figures(all_lat),
        "latency_resolution_s": observer.poll_s,
        "rss_max_mb": max((v for _, v in rss_mb), default=math.nan),
        "rss_mean_mb": sum(v for _, v in rss_mb) / len(rss_mb) if rss_mb else math.nan,
        "rss_slope_mb_per_min": slope_per_min(late_rss),
        "lag_end_msgs": lag[-1][1] if lag else math.nan,
        "lag_slope_msgs_per_min": slope_per_min(lag),
        "observer_db_errors": observer.db_errors,
        "acked_without_subscriber": sum(r.no_subscribers for r in totals.results),
        "publisher_reconnects": sum(r.reconnects for r in totals.results),
    }
    summary.update(generator_figures(work, totals, pub_steady, committed_steady))
    return summary


# A throughput figure is the ingestor's only if the generator offered this much more than
# was committed (issue 21); below it the run says "generator was the limit".
GENERATOR_HEADROOM = 2.0


def generator_figures(
    work: Workload, totals: FleetTotals, offered: float, committed: float
) -> dict[str, Any]:
    """What the load generator offered and what it cost, and whether it bounded the run.

    A fixed-rate run's generator was the limit when it missed its rate. An as-fast-as-
    possible run's was when it offered less than GENERATOR_HEADROOM times what was
    committed: an ingestor that kept up with everything offered has shown no ceiling.
    Its CPU share (CPU seconds / publishing seconds, per process) says why: near 1, the
    generator itself was saturated."""
    span = max(totals.publish_end - totals.started, 1e-9)
    cpu = sum(r.cpu_s for r in totals.results)
    busiest = max((r.cpu_s for r in totals.results), default=0.0) / span
    if work.rate:
        limited = totals.achieved_rate < RATE_TOLERANCE * work.rate
    else:
        limited = not (committed > 0 and offered >= GENERATOR_HEADROOM * committed)
    return {
        "generator_offered_msgs_per_s": offered,
        "generator_offered_to_committed": offered / committed if committed > 0 else None,
        "generator_cpu_s": cpu,
        "generator_busiest_process_cpu_share": busiest,
        "generator_processes": len(totals.results),
        "generator_limited": limited,
    }


# A load generator that used this share of its threads' time was itself saturated.
GENERATOR_SATURATED = 0.9
# Other processes busy on this share of the machine's cores made the run a shared one.
OTHER_LOAD_NOTED = 0.25


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing, NaN or not positive."""
    ok = all(isinstance(x, int | float) and x == x and x > 0 for x in (value, reference))
    return float(value) / float(reference) if ok else None  # type: ignore[arg-type]


def cpu_shares(used: dict[str, float]) -> dict[str, float]:
    """Each named process tree's share of the CPU seconds all of them used together."""
    total = sum(used.values())
    return {k: (v / total if total > 0 else math.nan) for k, v in used.items()}


def load_limit(
    wall_s: float,
    cores: int,
    generator_s: float,
    generator_threads: int,
    server_s: float,
    database_s: float | None = None,
    machine_busy_s: float | None = None,
) -> dict[str, Any]:
    """Which side bounded a closed-loop throughput run, from the CPU each side used.

    The run measured the client, not the server, when the generator was saturated (its
    CPU time reached GENERATOR_SATURATED of its threads' wall time) or when it used at
    least as much CPU as the server process it was loading: on a box whose cores the
    generator, the API and PostgreSQL share, every second the client burns is one the
    server did not get, and a client that needs as much CPU per request as the server
    halves the rate it can show. Otherwise the figure is the server's; processes outside
    the run taking a large share of the machine are noted, since they bound it too.
    """
    wall = max(wall_s, 1e-9)
    used = {"generator": generator_s, "api": server_s}
    if database_s is not None:
        used["database"] = database_s
    shares = cpu_shares(used)
    ours = sum(used.values())
    other = (
        max(0.0, machine_busy_s - ours)
        if machine_busy_s is not None and machine_busy_s == machine_busy_s
        else None
    )
    out: dict[str, Any] = {
        "wall_s": wall_s,
        "cpu_s": used,
        "cpu_share": shares,
        "cores_used": {k: v / wall for k, v in used.items()},
        "other_cores_used": None if other is None else other / wall,
    }
    if generator_s >= GENERATOR_SATURATED * generator_threads * wall:
        out["limit"] = "client"
        out["reason"] = (
            f"the generator used {generator_s / wall:.2f} of its {generator_threads} "
            "thread(s)' time: it was saturated"
        )
    elif generator_s >= server_s:
        out["limit"] = "client"
        out["reason"] = (
            f"the generator used as much CPU as the API ({generator_s:.1f} s vs {server_s:.1f} s)"
        )
    else:
        out["limit"] = "server"
        out["reason"] = (
            f"the generator used {shares['generator']:.0%} of the run's CPU, the API "
            f"{shares['api']:.0%}"
        )
        if other is not None and other >= OTHER_LOAD_NOTED * cores * wall:
            out["reason"] += (
                f"; other processes kept {other / wall:.2f} of {cores} cores busy meanwhile"
            )
    return out
