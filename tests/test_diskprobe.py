"""loadtests/diskprobe.py: real flushes on this machine's disk, and which operations a
stall overlapped."""

from __future__ import annotations

import time
from pathlib import Path

from loadtests import diskprobe


def test_the_probe_flushes_for_real_and_cleans_up(tmp_path: Path) -> None:
    probe = diskprobe.DiskProbe(tmp_path, interval_s=0.01).start()
    time.sleep(0.3)
    flushes = probe.stop()
    assert len(flushes) >= 5, flushes
    assert all(d > 0 for _t, d in flushes)
    assert [t for t, _d in flushes] == sorted(t for t, _d in flushes)
    assert not (tmp_path / "f5g-disk-probe").exists()
    assert diskprobe.summary(flushes)["samples"] == len(flushes)


def test_stalls_and_what_they_overlapped() -> None:
    flushes = [(10.0, 0.001), (11.0, 0.5), (12.0, 0.099), (13.0, 0.1)]
    spans = diskprobe.stalls(flushes)
    assert spans == [(11.0, 11.5), (13.0, 13.1)]
    assert diskprobe.summary(flushes)["stalls"] == 2
    assert diskprobe.touched(spans, 10.9, 11.1)  # began before, ended inside
    assert diskprobe.touched(spans, 11.2, 11.3)  # inside
    assert diskprobe.touched(spans, 10.0, 14.0)  # around both
    assert not diskprobe.touched(spans, 11.5, 12.9)  # between them
    assert not diskprobe.touched(spans, 9.0, 11.0)  # ended as one began
