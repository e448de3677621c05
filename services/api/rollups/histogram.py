"""Percentiles from the fixed latency histogram kept in the link rollups.

Interpolating linearly inside the bucket that holds the rank bounds the error by that
bucket's width (about 10-25 % of the value with the chosen edges), which is what makes
percentiles over thirty days answerable from a few thousand summary rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.api.rollups.specs import LATENCY_EDGES_MS

LATENCY_BUCKET_COLUMNS = tuple(f"lat_h{i:02d}" for i in range(len(LATENCY_EDGES_MS) + 1))


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of the histogram, or None when it is empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            lower = 0.0 if i == 0 else float(LATENCY_EDGES_MS[i - 1])
            if i >= len(LATENCY_EDGES_MS):
                return lower  # open-ended top bucket: report its lower edge
            upper = float(LATENCY_EDGES_MS[i])
            return lower + (upper - lower) * max(0.0, rank - seen) / c
        seen += c
    return float(LATENCY_EDGES_MS[-1])
