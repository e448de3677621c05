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
    return summary
