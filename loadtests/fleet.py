"""The device fleet: several publisher processes, their live progress and their totals.

One Python process tops out well below the ingest targets, so the fleet is split across
processes; each owns a disjoint set of devices, which keeps per-device seq numbering (and
so loss accounting) local to one process.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from loadtests.payloads import ROWS_PER_RECORD
from loadtests.publisher import PublisherConfig, PublisherResult, run_publisher


@dataclass(frozen=True)
class FleetConfig:
    host: str
    port: int
    project: str = "bench"
    stream: str = "link"
    devices: int = 200
    processes: int = 2
    rate: float = 0.0  # total messages per second; 0 = as fast as possible
    qos: int = 1
    duration_s: float = 10.0
    batch: int = 1
    window: int = 2000
    seed: int = 0
    run_id: str = "bench"
    raw: bool = False  # pre-encoded packets on a plain socket (publisher._publish_raw)

    def publisher(self, index: int) -> PublisherConfig:
        per, extra = divmod(self.devices, self.processes)
        return PublisherConfig(
            index=index,
            host=self.host,
            port=self.port,
            project=self.project,
            stream=self.stream,
            devices=per + (1 if index < extra else 0),
            rate=self.rate / self.processes,
            qos=self.qos,
            duration_s=self.duration_s,
            batch=self.batch,
            window=self.window,
            seed=self.seed,
            run_id=self.run_id,
            raw=self.raw,
        )

    @property
    def rows_per_message(self) -> int:
        return self.batch * ROWS_PER_RECORD[self.stream]


@dataclass
class FleetTotals:
    """What the fleet published, per device, once every publisher has reported."""

    results: list[PublisherResult]
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # wall, sent, acked

    @property
    def messages(self) -> int:
        return sum(r.messages for r in self.results)

    @property
    def acked(self) -> int:
        return sum(r.acked for r in self.results)

    @property
    def started(self) -> float:
        return min(r.started for r in self.results)

    @property
    def publish_end(self) -> float:
        return max(r.publish_end for r in self.results)

    @property
    def achieved_rate(self) -> float:
        """Sum of each publisher's own rate: processes start a little apart, so one span
        from the first start to the last end would understate what each sustained."""
        return sum(r.achieved_rate for r in self.results)

    def last_seq(self) -> dict[str, int]:
        return {d: s for r in self.results for d, s in zip(r.devices, r.last_seq, strict=True)}

    def unacked(self) -> dict[str, list[int]]:
        return {d: seqs for r in self.results for d, seqs in r.unacked.items()}


class Fleet:
    """Runs the publisher processes; `poll()` folds their progress ticks into totals."""

    def __init__(self, cfg: FleetConfig) -> None:
        if cfg.devices < cfg.processes:
            raise ValueError("need at least one device per publisher process")
        self.cfg = cfg
        ctx = mp.get_context("spawn")
        self._queue: Any = ctx.Queue()
        self._procs = [
            ctx.Process(
                target=run_publisher,
                args=(cfg.publisher(i), self._queue),
                name=f"publisher-{i}",
                daemon=True,
            )
            for i in range(cfg.processes)
        ]
        self._sent = [0] * cfg.processes
        self._acked = [0] * cfg.processes
        self._results: dict[int, PublisherResult] = {}
        self.samples: list[tuple[float, int, int]] = []

    def start(self) -> None:
        for p in self._procs:
            p.start()

    @property
    def sent(self) -> int:
        return sum(self._sent)

    @property
    def acked(self) -> int:
        return sum(self._acked)

    @property
    def done(self) -> bool:
        return len(self._results) == len(self._procs)

    def poll(self, timeout: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg[0] == "tick":
                _, i, _wall, sent, acked = msg
                self._sent[i], self._acked[i] = sent, acked
            else:
                _, i, result = msg
                self._results[i] = result
            if time.monotonic() >= deadline and self._queue.empty():
                break
        if not self.done:
            for i, p in enumerate(self._procs):
                if not p.is_alive() and i not in self._results and p.exitcode not in (None, 0):
                    raise RuntimeError(f"publisher {i} died with exit code {p.exitcode}")

    def sample(self) -> None:
        self.samples.append((time.time(), self.sent, self.acked))

    def join(self, timeout: float = 120.0) -> FleetTotals:
        deadline = time.monotonic() + timeout
        while not self.done:
            if time.monotonic() > deadline:
                self.terminate()
                raise RuntimeError("publishers did not finish in time")
            self.poll(0.2)
        for p in self._procs:
            p.join(5)
        errors = [r.error for r in self._results.values() if r.error]
        if errors:
            raise RuntimeError("publisher failed: " + "; ".join(errors))
        results = [self._results[i] for i in sorted(self._results)]
        return FleetTotals(results, list(self.samples))

    def terminate(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
