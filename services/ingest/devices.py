"""Device registry: first message registers a device (and its project), later ones keep
`last_seen` and `online` current.

Writing the devices table for every message would cost a row lock and a round trip per
message, so the registry remembers what it last wrote: a batch carries an upsert for a
device only when the device is new to this process, its online state changed, or its
`last_seen` is older than `TOUCH_INTERVAL_S`. The upsert runs at the end of the batch's
transaction (row locks held briefly, sorted so concurrent batches cannot deadlock) and
therefore commits before the batch's messages are acknowledged.
"""

from __future__ import annotations

import time
from typing import Any, Final

from services.protocols.batch import Touches

TOUCH_INTERVAL_S: Final = 5.0
_KNOWN_MAX: Final = 500_000

UPSERT_SQL: Final = """
WITH new_projects AS (
    INSERT INTO projects (id, name)
    SELECT p, p FROM unnest($6::text[]) AS p
    ON CONFLICT (id) DO NOTHING
)
INSERT INTO devices AS d (project_id, device_id, kind, first_seen, last_seen, online)
SELECT p, dev, k, t, t, o
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[]) AS u(p, dev, k, t, o)
ON CONFLICT (project_id, device_id) DO UPDATE
SET last_seen = greatest(d.last_seen, excluded.last_seen),
    online = CASE WHEN excluded.last_seen >= d.last_seen THEN excluded.online ELSE d.online END
"""


class DeviceRegistry:
    def __init__(self, touch_interval_s: float = TOUCH_INTERVAL_S) -> None:
        self.touch_interval_s = touch_interval_s
        self._known: dict[tuple[str, str], tuple[float, bool]] = {}
        self._projects: set[str] = set()

    def upsert_args(self, touches: Touches) -> tuple[Any, ...] | None:
        """Arguments of `UPSERT_SQL` for the devices of one batch that need writing."""
        now = time.monotonic()
        known = self._known
        if len(known) >= _KNOWN_MAX:
            known.clear()  # forgetting only costs one redundant upsert per device
        rows = []
        for key, (kind, online, at) in touches.items():
            state = known.get(key)
            if state is None or state[1] != online or now - state[0] >= self.touch_interval_s:
                rows.append((key[0], key[1], kind, at, online))
                known[key] = (now, online)
        if not rows:
            return None
        rows.sort(key=lambda r: (r[0], r[1]))
        new_projects = sorted({r[0] for r in rows} - self._projects)
        self._projects.update(new_projects)
        columns = list(zip(*rows, strict=True))
        return (*(list(c) for c in columns), new_projects)
