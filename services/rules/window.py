"""Bounded rolling windows with running aggregates, so a rule costs O(1) per record.

A window holds either the last N samples or the samples of the last T seconds (device
time). Time windows are also capped at `max_samples`, so a device that floods cannot grow
a rule's memory without bound. Besides the sum, a window counts how many samples exceed
each of a few fixed limits: "p95 above B" is the same as "more than 5 % of the samples
above B", which answers a percentile question without sorting on every record.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """`count` samples, or `seconds` of device time (capped at `max_samples`)."""

    count: int | None = None
    seconds: float | None = None
    max_samples: int = 10_000

    def describe(self) -> str:
        return f"{self.count} samples" if self.count is not None else f"{self.seconds:g} s"


class Window:
    __slots__ = ("_cap", "_limits", "_seconds", "above", "sum", "times", "values")

    def __init__(self, spec: WindowSpec, limits: tuple[float, ...] = ()) -> None:
        self._cap = spec.count if spec.count is not None else spec.max_samples
        self._seconds = spec.seconds
        self._limits = limits
        self.values: deque[float] = deque()
        self.times: deque[float] = deque()
        self.sum = 0.0
        self.above = [0] * len(limits)

    def __len__(self) -> int:
        return len(self.values)

    def push(self, t: float, value: float) -> None:
        values = self.values
        if len(values) >= self._cap:
            self._drop()
        values.append(value)
        self.times.append(t)
        self.sum += value
        limits = self._limits
        for i in range(len(limits)):
            if value > limits[i]:
                self.above[i] += 1
        if self._seconds is not None:
            horizon = t - self._seconds
            times = self.times
            while times[0] < horizon:
                self._drop()

    def _drop(self) -> None:
        old = self.values.popleft()
        self.times.popleft()
        self.sum -= old
        limits = self._limits
        for i in range(len(limits)):
            if old > limits[i]:
                self.above[i] -= 1
        if not self.values:
            self.sum = 0.0  # no float drift carried over an emptied window

    def mean(self) -> float:
        return self.sum / len(self.values) if self.values else 0.0

    def quantile(self, q: float) -> float:
        """Exact nearest-rank quantile; sorts, so only for evidence, not per record."""
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
        return ordered[rank]

    def span(self) -> tuple[float, float] | None:
        return (self.times[0], self.times[-1]) if self.times else None
