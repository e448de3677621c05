"""The contract between the ingest pipeline and a protocol adapter.

The native JSON contract is one adapter; Sparkplug B and VDA 5050 are others. An adapter
only decodes: it maps one MQTT message to native records (the msgspec structs of
`services.core.contracts`), device online/offline events and commands to publish. The
pipeline does the rest the same way for every adapter: batching, COPY, dead letters,
acknowledgement after commit, metrics. Adding a protocol means one new module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.core.contracts import Decoded, Topic


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A device went online or offline (MQTT will, Sparkplug DEATH, VDA 5050 connection)."""

    project: str
    device: str
    kind: str
    online: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Command:
    """A message the adapter needs published, e.g. a Sparkplug rebirth request."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(slots=True)
class AdapterResult:
    """What one message means. Rejections are raised as `ContractError`, not returned."""

    items: list[tuple[Topic, Decoded]] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)


class Adapter(Protocol):
    name: str

    def topic_filters(self) -> list[str]:
        """MQTT topic filters to subscribe (without any `$share/` prefix)."""
        ...

    def shared(self) -> bool:
        """Whether replicas may split this adapter's topics with a shared subscription.

        Stateful protocols (Sparkplug aliases and seq) need every message of one edge node
        in the same replica, so they return False and shard by node instead.
        """
        ...

    def matches(self, topic: str) -> bool: ...

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> AdapterResult:
        """Decode one message. Raise `ContractError` with a reason to dead-letter it."""
        ...


class ConnectionHooks(Protocol):
    """Optional methods an adapter may add; the consumer looks them up with `getattr`.

    A Sparkplug primary host, for instance, registers its STATE death as the MQTT will
    of the ingest client and publishes its STATE birth after every (re)connection.
    Adapters without these methods keep working unchanged.
    """

    def will(self) -> Command | None:
        """The MQTT will to set on the ingest client (one per client: the first wins)."""
        ...

    def on_connect(self) -> list[Command]:
        """Messages to publish after each successful connection and subscription."""
        ...
