"""How fast this machine runs Python right now: a fixed piece of pure-Python work, timed.

Why: the shared 2-core machines these benchmarks run on do not run at one speed. The same
loop takes 38 ms at one moment and 65-78 ms a few seconds later on an otherwise idle
machine (the host's other tenants), and a run that is bound by CPU moves with it. Timed
just before and just after a run, it tells a slow run on a slow machine from a slow run
of slower code; CPU per operation alone does not, since it grows on a slow host too.
"""

from __future__ import annotations

import hashlib
import json
import time


def _work() -> int:
    counts: dict[str, int] = {}
    for i in range(200_000):
        key = f"k{i % 5000}"
        counts[key] = counts.get(key, 0) + i
    text = json.dumps(counts)
    for _ in range(50):
        hashlib.sha256(text.encode()).hexdigest()
    return len(text)


def python_speed_ms(repeats: int = 7) -> float:
    """The median CPU milliseconds of `repeats` runs of the fixed work (lower: faster)."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        _work()
        times.append((time.process_time() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]
