"""The disk's own flush latency, measured beside the database during a run.

Why: a commit returns when its WAL is flushed, so a virtual disk whose flush stalls for
half a second stalls every writer at once, and a latency tail can be the disk's rather
than the platform's (docs/benchmarks.md: every ingest probe device late together for a
second). A figure that says which needs a same-run reference: this probe writes one 8 KiB
block and `fdatasync`s it every `interval_s`, in a file beside the database's data
directory (the same file system as its WAL), and keeps each flush's start and duration.
At 50 flushes a second it costs the machine nothing measurable.

`touched(stalls, start, end)` says whether an operation that ran from `start` to `end`
overlapped a stall, so a report can show the tail with and without the disk's stalls.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Final

from loadtests import stats

BLOCK: Final = b"\0" * 8192
STALL_S: Final = 0.1  # a flush this slow is a stall (a quiet disk here flushes in ~0.2 ms)


class DiskProbe:
    def __init__(self, directory: Path, interval_s: float = 0.02) -> None:
        self.path = directory / "f5g-disk-probe"
        self.interval_s = interval_s
        self.flushes: list[tuple[float, float]] = []  # (wall time at start, seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DiskProbe:
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.path.unlink(missing_ok=True)
        return self.flushes

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.is_set():
                os.pwrite(fd, BLOCK, 0)
                start, t0 = time.time(), time.perf_counter()
                os.fdatasync(fd)
                self.flushes.append((start, time.perf_counter() - t0))
                self._stop.wait(self.interval_s)
        finally:
            os.close(fd)


def stalls(flushes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The flushes slower than `STALL_S`: (start, end) in wall time."""
    return [(t, t + d) for t, d in flushes if d >= STALL_S]


def touched(spans: list[tuple[float, float]], start: float, end: float) -> bool:
    """Whether [start, end] overlaps one of `spans`."""
    return any(s < end and start < e for s, e in spans)


def summary(flushes: list[tuple[float, float]]) -> dict[str, float]:
    figures = stats.latency_figures([d for _t, d in flushes])
    return {**figures, "stalls": float(len(stalls(flushes)))}
