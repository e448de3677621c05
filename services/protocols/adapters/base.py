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

from services.core.contracts import ContractError, Decoded, Topic


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
    """What one message means. A rejected message is raised as `ContractError`; a message
    that is partly stored lists what was dropped in `rejected`, one dead letter each."""

    items: list[tuple[Topic, Decoded]] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    rejected: list[ContractError] = field(default_factory=list)


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


class Attribution(Protocol):
    """Optional method an adapter may add; the pipeline looks it up with `getattr`.

    A dead letter is only useful to a device maker if it is filed under the device: the
    dashboard's per-device dead letters and `/ingest/health?project=` select by project and
    device. A message can be rejected before the adapter understood it (oversize, a
    payload that does not parse, a stream without a table), so the adapter is asked to
    read the sender from the topic alone.
    """

    def attribute(self, topic: str) -> tuple[str | None, str | None]:
        """(project, device) the topic names, each None where the topic does not say;
        never raises."""
        ...
