"""Dead-letter rows: a rejected message kept with enough context to diagnose the sender.

Only the first bytes of the payload are stored (`payload_size` keeps the real size) so a
flood of oversize or garbage messages cannot grow the table faster than the valid data.
A dead letter is committed in the same transaction as the valid rows of its batch and
acknowledged only after that commit, exactly like valid data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from services.core.contracts import ContractError, Reason

TABLE: Final = "dead_letters"
COLUMNS: Final = (
    "received_at",
    "topic",
    "reason",
    "detail",
    "project_id",
    "device_id",
    "payload",
    "payload_size",
)
PAYLOAD_KEEP_BYTES: Final = 4096
DETAIL_MAX_CHARS: Final = 1000
TOPIC_MAX_CHARS: Final = 1024


def _clean(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; a topic may contain one.
    return text[:limit].replace("\x00", "\\0")


def dead_letter_row(
    received_at: datetime,
    topic: str,
    payload: bytes,
    error: ContractError,
    project: str | None = None,
    device: str | None = None,
) -> tuple[Any, ...]:
    return (
        received_at,
        _clean(topic, TOPIC_MAX_CHARS),
        error.reason.value,
        _clean(error.detail, DETAIL_MAX_CHARS),
        project,
        device,
        payload[:PAYLOAD_KEEP_BYTES],
        len(payload),
    )


def oversize(size: int, limit: int) -> ContractError:
    return ContractError(Reason.OVERSIZE, f"payload of {size} bytes exceeds {limit} bytes")
