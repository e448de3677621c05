"""Reconnect delays: doubling from a minimum to a cap, with jitter.

Why capped low for ingest (1 s): Mosquitto 2 does not restore shared subscriptions after
a restart, so messages published before ingest resubscribes reach no subscriber and are
dropped (see services/ingest/consumer.py); the cap bounds that window. The jitter keeps
replicas from reconnecting in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    min_s: float
    max_s: float
    jitter: bool = True
    _next: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")
        self._next = self.min_s

    def reset(self) -> None:
        self._next = self.min_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay * (0.5 + random.random()) if self.jitter else delay
