"""A batch is one database transaction and one burst of acknowledgements.

The batcher fills the open batch from the MQTT reader and seals it when it holds
`batch_max_rows` rows or `BATCH_MAX_BYTES` of payload, or `batch_max_delay_ms` after its
first message, whichever comes first; the size bound keeps throughput, the delay bound
keeps latency. A sealed batch goes to the writer, which commits it and then acknowledges
its messages, and only if they arrived on the connection that is still open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from services.protocols.rows import Row

# Device key -> (kind, online, at) as the latest message of a batch says.
Touches = dict[tuple[str, str], tuple[str, bool, datetime]]

# Payload bytes per batch; with the writer's bounded queue this bounds the memory that
# messages held for acknowledgement can take, whatever their size.
BATCH_MAX_BYTES: Final = 8 * 1024 * 1024


class Batch:
    __slots__ = (
        "dead",
        "device_args",
        "dup",
        "gen",
        "lags",
        "mids",
        "nbytes",
        "nrows",
        "rejected",
        "rows",
        "sources",
        "spans",
        "touches",
    )

    def __init__(self, gen: int) -> None:
        self.gen = gen  # connection generation the message ids belong to
        self.rows: dict[str, list[Row]] = {}
        self.dead: list[Row] = []
        self.touches: Touches = {}
        self.mids: list[int] = []  # QoS 1 message ids to acknowledge after commit
        # (topic, payload, received_at) of every message, to isolate a poison message.
        self.sources: list[tuple[str, bytes, datetime]] = []
        # (source index, table, start, end): which rows each message produced.
        self.spans: list[tuple[int, str, int, int]] = []
        self.lags: list[datetime] = []  # device time of each message's first record
        self.rejected: dict[str, int] = {}
        self.device_args: tuple[Any, ...] | None = None
        self.nrows = 0
        self.nbytes = 0
        self.dup = False  # holds a redelivery: expect conflicts, write idempotently

    def __len__(self) -> int:
        return len(self.sources)


class Batcher:
    def __init__(
        self,
        max_rows: int,
        max_delay_s: float,
        on_sealed: Callable[[Batch], None],
        max_bytes: int = BATCH_MAX_BYTES,
    ) -> None:
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.max_bytes = max_bytes
        self._on_sealed = on_sealed
        self.gen = 0
        self.current = Batch(0)
        self._timer: asyncio.TimerHandle | None = None

    def added(self) -> None:
        """Called after each message went into `current`."""
        b = self.current
        if b.nrows >= self.max_rows or b.nbytes >= self.max_bytes:
            self.seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay_s, self._due)

    def _due(self) -> None:
        self._timer = None
        self.seal()

    def seal(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        b = self.current
        if not b.sources and not b.mids:
            return
        # A batch of only other replicas' messages (mids, no sources) is sealed too, and
        # goes to the writer like any other (an empty transaction): they are acknowledged
        # in turn, not held until a message of this replica's own arrives.
        self.current = Batch(self.gen)
        self._on_sealed(b)

    def new_generation(self, gen: int) -> None:
        """A new connection: what was read on the old one must not mix with the new."""
        self.seal()
        self.gen = gen
        self.current = Batch(gen)
