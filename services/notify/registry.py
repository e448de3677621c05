"""What the notifier sends through: the channel package's types, one shared HTTP client
per event loop, and how a route's recipients fill each type's config.

A channel row's `config` is validated with the type's model (`CHANNELS[type].config`)
when a delivery is sent; a config the model refuses is not retried (the operator must fix
the channel). A type the channel package does not know is given up with a clear status
rather than queued for ever.

The mqtt type is not offered: alarm transitions are already published on MQTT by the
rules service, and the notifier holds no MQTT session (nor a broker account) to lend the
channel. The API refuses to create one; a row written past the API is given up with
status "channel type mqtt unavailable".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from services.protocols.notify.channels import CHANNELS, ChannelType
from services.protocols.notify.http import Client
from services.protocols.notify.targets import Targets

UNAVAILABLE: Final = frozenset({"mqtt"})

# Route `recipients` -> the config field of each type that takes addressees. Types absent
# here address a fixed group (a robot, a URL) and ignore a route's recipients.
RECIPIENT_FIELDS: Final[Mapping[str, str]] = {"email": "recipients", "dingtalk": "at_mobiles"}

_clients: dict[int, Client] = {}
_targets = Targets()


def configure(targets: Targets) -> None:
    """The addresses the clients made from now on may reach (`notify.allow_private_targets`):
    set by the notifier at start; until then, global addresses only."""
    global _targets
    _targets = targets


def lookup(channel_type: str) -> ChannelType | None:
    if channel_type in UNAVAILABLE:
        return None
    return CHANNELS.get(channel_type)


def with_recipients(
    channel_type: str, config: Mapping[str, Any], recipients: list[str] | None
) -> dict[str, Any]:
    """The channel's stored config with a route's recipients in the type's addressee
    field (replacing the channel's own list), when the route names any."""
    out = dict(config)
    field = RECIPIENT_FIELDS.get(channel_type)
    if field is not None and recipients:
        out[field] = list(recipients)
    return out


def client() -> Client:
    """The HTTP client of the running event loop: one connection pool for every send, so
    an alarm storm reuses keep-alive connections instead of opening one per notice."""
    loop = id(asyncio.get_running_loop())
    found = _clients.get(loop)
    if found is None:
        found = _clients[loop] = Client(targets=_targets)
    return found


async def close() -> None:
    """Release the connection pool of the running event loop."""
    found = _clients.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.close()
