"""Reconnect delays: doubling from a minimum to a cap, with jitter.

Why capped low for ingest (1 s): Mosquitto 2 does not restore shared subscriptions after
a restart, so messages published before ingest resubscribes reach no subscriber and are
dropped (see services/ingest/consumer.py); the cap bounds that window. The jitter keeps
replicas from reconnecting in lockstep. With `stable_s`, only a connection that lived
that long resets the delay, so a broker that accepts and then drops every connection
(an ACL refusal, say) is not hammered at the minimum delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    min_s: float
    max_s: float
    jitter: bool = True
    stable_s: float = 0.0
    _next: float = 0.0
    _up_at: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")
        self._next = self.min_s

    def reset(self) -> None:
        self._next = self.min_s

    def connected(self, now: float) -> None:
        if self.stable_s <= 0:
            self.reset()
        self._up_at = now

    def disconnected(self, now: float) -> None:
        if self._up_at is not None and now - self._up_at >= self.stable_s:
            self.reset()
        self._up_at = None

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay * (0.5 + random.random()) if self.jitter else delay
