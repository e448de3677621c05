"""Channel types the notifier can send through: type name -> (config model, send function).

A channel row's `config` is validated with the model when a delivery is sent; a config
the model refuses is not retried (the operator must fix the channel). Types without an
entry (not yet available in this build) are given up with a clear status rather than
queued for ever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.notify import webhook
from services.protocols.notify.message import AlarmNotice, Language, Outcome

Send = Callable[[Any, AlarmNotice, Language], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class ChannelType:
    config: type[BaseModel]
    send: Send


CHANNEL_TYPES: dict[str, ChannelType] = {
    "webhook": ChannelType(webhook.WebhookConfig, webhook.send),
}


def lookup(channel_type: str) -> ChannelType | None:
    return CHANNEL_TYPES.get(channel_type)


async def close() -> None:
    """Release the senders' connection pools of the running event loop."""
    await webhook.close()
