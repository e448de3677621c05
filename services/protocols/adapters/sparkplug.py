"""Sparkplug B adapter: the platform as a Sparkplug primary host application.

Sparkplug is stateful. A BIRTH lists a node's (or device's) metrics with names, datatypes
and aliases; DATA messages then send only aliases and values. Every message of a node
carries `seq` (0-255, wrapping), and a gap means something was lost, so the host asks the
node to start over (NCMD `Node Control/Rebirth`). That state is per edge node, which is
why this adapter does not share its subscription: every replica sees every node and
keeps only the nodes whose stable hash falls on its shard (`shard_of`).

What is stored: numeric and boolean metrics, as telemetry of device `{node}` (node
metrics) or `{node}.{device}`, project = group id; String and Text metrics likewise in
`telemetry_text`. The telemetry record's `seq` is the
payload's Sparkplug seq; with the metric or payload timestamp it keeps the unique key
(project, device, metric, ts, seq) distinct across seq wraps. Other datatypes are counted
and skipped; a DATA message with nothing storable is dead-lettered as `unsupported`.
Values the host cannot place are never dropped silently: metrics the BIRTH did not declare,
and metrics whose names collide after mapping (`x a`, `x_a`), each leave a `protocol`
dead letter next to the message's stored values (`AdapterResult.rejected`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from services.core.contracts import (
    ContractError,
    Decoded,
    Reason,
    Telemetry,
    TelemetryText,
    Topic,
    is_valid_id,
)
from services.core.metrics import metric_name
from services.core.settings import Settings
from services.protocols import sparkplug as spb
from services.protocols.adapters.base import AdapterResult, Command, DeviceEvent

NODE_KIND: Final = "spb-node"
DEVICE_KIND: Final = "spb-device"
MAX_METRICS_PER_RECORD: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SparkplugMetrics:
    """The adapter's counters, registered on the registry of the service that exports them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rebirths = Counter(
            metric_name("ingest", "sparkplug_rebirth_requests", "total"),
            "Rebirth requests (NCMD Node Control/Rebirth) sent to edge nodes, by cause.",
            ["reason"],
            registry=registry,
        )
        self.seq_gaps = Counter(
            metric_name("ingest", "sparkplug_seq_gaps", "total"),
            "Sparkplug messages whose seq was not the previous one plus one (messages lost).",
            registry=registry,
        )
        self.skipped_metrics = Counter(
            metric_name("ingest", "sparkplug_skipped_metrics", "total"),
            "Sparkplug metric values not stored: unsupported datatype, unusable name or value.",
            ["reason"],
            registry=registry,
        )
        self.stale_deaths = Counter(
            metric_name("ingest", "sparkplug_stale_deaths", "total"),
            "NDEATHs ignored because their bdSeq belongs to an earlier session of the node.",
            registry=registry,
        )


@dataclass(slots=True)
class MetricDef:
    """What a BIRTH said about one metric; `name` is None when it is never stored.

    `collides_with` is the raw name of an earlier metric of the same BIRTH that maps to the
    same telemetry name: that one is stored, this one's values are dead-lettered.
    """

    name: str | None
    datatype: int
    collides_with: bytes | None = None


@dataclass(slots=True)
class Scope:
    """The metrics one BIRTH declared: a node's own, or one device's."""

    by_alias: dict[int, MetricDef] = field(default_factory=dict)
    by_name: dict[bytes, MetricDef] = field(default_factory=dict)
    online: bool = True


@dataclass(slots=True)
class NodeState:
    bd_seq: int | None
    seq: int | None
    metrics: Scope
    devices: dict[str, Scope] = field(default_factory=dict)
    last_rebirth: float = -1e18

    @property
    def online(self) -> bool:
        return self.metrics.online


class SparkplugAdapter:
    name = "sparkplug"

    def __init__(
        self,
        host_id: str = "factory5g",
        rebirth_min_interval_s: float = 5.0,
        shard_index: int = 0,
        shard_count: int = 1,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`registry`: where the counters are exported. Without one (the passive copy in
        the rules service, tests) they count into a private registry nobody scrapes."""
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} outside 0..{shard_count - 1}")
        self.metrics = SparkplugMetrics(registry if registry is not None else CollectorRegistry())
        self.host_id = host_id
        self.rebirth_min_interval_s = rebirth_min_interval_s
        self.shard_index = shard_index
        self.shard_count = shard_count
        self._clock = clock
        self._nodes: dict[tuple[str, str], NodeState] = {}
        self._session_ms: int | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> SparkplugAdapter:
        s = settings.ingest
        return cls(
            host_id=s.sparkplug_host_id,
            rebirth_min_interval_s=s.sparkplug_rebirth_min_interval_s,
            shard_index=s.shard_index,
            shard_count=s.shard_count,
            registry=registry,
        )

    # ------------------------------------------------------------------ Adapter protocol

    def topic_filters(self) -> list[str]:
        node = [f"{spb.NAMESPACE}/+/{t}/+" for t in ("NBIRTH", "NDATA", "NDEATH")]
        device = [f"{spb.NAMESPACE}/+/{t}/+/+" for t in ("DBIRTH", "DDATA", "DDEATH")]
        return node + device

    def shared(self) -> bool:
        return False

    def matches(self, topic: str) -> bool:
        if not topic.startswith("spBv1.0/"):
            return False
        parts = topic.split("/", 3)
        return len(parts) == 4 and parts[2] in spb.INGESTED_TYPES

    def attribute(self, topic: str) -> tuple[str | None, str | None]:
        """Project (group) and device (node, or `{node}.{device}`) a rejected message's
        topic names, each None where the topic breaks the id grammar."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != spb.NAMESPACE or not is_valid_id(parts[1]):
            return None, None
        device = spb.device_id(parts[3], parts[4] if len(parts) == 5 else None)
        if not is_valid_id(parts[3]) or not is_valid_id(device):
            return parts[1], None
        return parts[1], device

    def owns(self, group: str, node: str) -> bool:
        return (
            self.shard_count == 1 or spb.shard_of(group, node, self.shard_count) == self.shard_index
        )

    # ------------------------------------------------------------------ host session

    def will(self) -> Command:
        """STATE death (`online: false`, retained, QoS 1) to set as the ingest client's will.

        Each call starts a new host session timestamp; `on_connect` publishes the birth with
        the same timestamp, which is how edge nodes match a will to its birth.
        """
        self._session_ms = int(time.time() * 1000)
        return _command(spb.host_state(self.host_id, self._session_ms, online=False))

    def on_connect(self) -> list[Command]:
        """STATE birth (`online: true`, retained, QoS 1), published after subscribing."""
        if self._session_ms is None:
            self._session_ms = int(time.time() * 1000)
        return [_command(spb.host_state(self.host_id, self._session_ms, online=True))]

    def node_state(self, group: str, node: str) -> NodeState | None:
        """The host's view of one edge node (for health pages and tests)."""
        return self._nodes.get((group, node))

    # ------------------------------------------------------------------ decoding

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> AdapterResult:
        t = spb.parse_topic(topic)
        handler = _HANDLERS.get(t.message_type)
        if handler is None:
            raise ContractError(Reason.BAD_TOPIC, f"{t.message_type} is not ingested")
        if not self.owns(t.group, t.node):
            return AdapterResult()
        msg = spb.parse_payload(payload)
        return handler(self, t, msg, received_at)

    def _nbirth(self, t: spb.SpTopic, msg: spb.Payload, at: datetime) -> AdapterResult:
        bd_seq = None
        for m in msg.metrics:
            if m.name == b"bdSeq" and m.WhichOneof("value") in ("long_value", "int_value"):
                bd_seq = m.long_value if m.WhichOneof("value") == "long_value" else m.int_value
        scope = Scope()
        node = NodeState(bd_seq=bd_seq, seq=msg.seq if msg.HasField("seq") else None, metrics=scope)
        # A new NBIRTH starts a new session: earlier device births no longer hold.
        self._nodes[(t.group, t.node)] = node
        result = AdapterResult()
        result.events.append(DeviceEvent(t.group, t.node, NODE_KIND, True, at))
        self._learn(t, scope, msg, result)
        self._store(t, None, scope, msg, at, result, birth=True)
        return result

    def _dbirth(self, t: spb.SpTopic, msg: spb.Payload, at: datetime) -> AdapterResult:
        result = AdapterResult()
        node = self._live_node(t, at, result)
        if node is None:
            return result
        self._check_seq(t, node, msg, at, result)
        assert t.device is not None
        scope = Scope()
        node.devices[t.device] = scope
        self._learn(t, scope, msg, result)
        result.events.append(
            DeviceEvent(t.group, spb.device_id(t.node, t.device), DEVICE_KIND, True, at)
        )
        self._store(t, t.device, scope, msg, at, result, birth=True)
        return result

    def _data(self, t: spb.SpTopic, msg: spb.Payload, at: datetime) -> AdapterResult:
        result = AdapterResult()
        node = self._live_node(t, at, result)
        if node is None:
            return result
        if not msg.HasField("seq"):
            raise ContractError(Reason.PROTOCOL, f"{t.message_type} without seq")
        self._check_seq(t, node, msg, at, result)
        if t.device is None:
            scope = node.metrics
        else:
            known = node.devices.get(t.device)
            if known is None or not known.online:
                self._request_rebirth(t, node, "unknown_device", result)
                return result
            scope = known
            # DDATA travels through its edge node: the node is alive too, and its last_seen
            # must say so even when only its devices have data.
            result.events.append(DeviceEvent(t.group, t.node, NODE_KIND, True, at))
        stored, skipped = self._store(t, t.device, scope, msg, at, result, birth=False)
        if stored or result.rejected:
            return result
        # Nothing stored: dead-letter the message so it is not lost silently.
        if skipped.get("unsupported_type"):
            raise ContractError(
                Reason.UNSUPPORTED,
                f"{t.message_type} has no numeric or boolean metric this platform stores",
            )
        if skipped:
            raise ContractError(
                Reason.SCHEMA, f"{t.message_type} has no usable value (non-finite or bad ts)"
            )
        return result

    def _ndeath(self, t: spb.SpTopic, msg: spb.Payload, at: datetime) -> AdapterResult:
        result = AdapterResult()
        node = self._nodes.get((t.group, t.node))
        if node is None or not node.online:
            return result
        bd_seq = None
        for m in msg.metrics:
            if m.name == b"bdSeq":
                which = m.WhichOneof("value")
                bd_seq = m.long_value if which == "long_value" else m.int_value
        if node.bd_seq is not None and bd_seq is not None and bd_seq != node.bd_seq:
            self.metrics.stale_deaths.inc()
            return result
        node.metrics.online = False
        result.events.append(DeviceEvent(t.group, t.node, NODE_KIND, False, at))
        for name, scope in node.devices.items():
            if scope.online:
                scope.online = False
                result.events.append(
                    DeviceEvent(t.group, spb.device_id(t.node, name), DEVICE_KIND, False, at)
                )
        return result

    def _ddeath(self, t: spb.SpTopic, msg: spb.Payload, at: datetime) -> AdapterResult:
        result = AdapterResult()
        node = self._live_node(t, at, result)
        if node is None:
            return result
        self._check_seq(t, node, msg, at, result)
        assert t.device is not None
        scope = node.devices.get(t.device)
        if scope is not None and scope.online:
            scope.online = False
            result.events.append(
                DeviceEvent(t.group, spb.device_id(t.node, t.device), DEVICE_KIND, False, at)
            )
        return result

    # ------------------------------------------------------------------ helpers

    def _live_node(self, t: spb.SpTopic, at: datetime, result: AdapterResult) -> NodeState | None:
        """The node's session, or None after asking for a rebirth (no BIRTH seen yet, or
        the node died): without the BIRTH, aliases and datatypes cannot be resolved."""
        node = self._nodes.get((t.group, t.node))
        if node is None:
            node = NodeState(bd_seq=None, seq=None, metrics=Scope(online=False))
            self._nodes[(t.group, t.node)] = node
        if not node.online:
            self._request_rebirth(t, node, "no_birth", result)
            return None
        return node

    def _check_seq(
        self, t: spb.SpTopic, node: NodeState, msg: spb.Payload, at: datetime, result: AdapterResult
    ) -> None:
        if not msg.HasField("seq"):
            return
        seq = msg.seq
        last = node.seq
        node.seq = seq
        # A repeat of the last seq is an MQTT redelivery, not a loss.
        if last is None or seq == last or seq == (last + 1) % spb.SEQ_MODULO:
            return
        self.metrics.seq_gaps.inc()
        self._request_rebirth(t, node, "seq_gap", result)

    def _request_rebirth(
        self, t: spb.SpTopic, node: NodeState, reason: str, result: AdapterResult
    ) -> None:
        now = self._clock()
        if now - node.last_rebirth < self.rebirth_min_interval_s:
            return
        node.last_rebirth = now
        self.metrics.rebirths.labels(reason).inc()
        out = spb.rebirth_request(t.group, t.node, int(time.time() * 1000))
        result.commands.append(_command(out))

    def _learn(self, t: spb.SpTopic, scope: Scope, msg: spb.Payload, result: AdapterResult) -> None:
        taken: dict[str, bytes] = {}  # telemetry name -> raw name that holds it
        collisions: list[str] = []
        for m in msg.metrics:
            raw = m.name
            if not raw:
                continue
            collides: bytes | None = None
            if spb.is_control_metric(raw):
                mapped = None
            else:
                mapped = spb.metric_name(raw)
                if mapped is None:
                    self.metrics.skipped_metrics.labels("bad_name").inc()
                elif m.datatype not in spb.NUMERIC and m.datatype not in spb.TEXT:
                    self.metrics.skipped_metrics.labels("unsupported_type").inc()
                first = taken.setdefault(mapped, raw) if mapped is not None else raw
                if first != raw:
                    # `x a` and `x_a` both map to `x_a`: one series cannot hold both, and
                    # keeping whichever came last would mix two signals silently.
                    collisions.append(f"{_show(raw)} maps to {mapped!r} like {_show(first)}")
                    collides, mapped = first, None
            d = MetricDef(mapped, m.datatype, collides)
            scope.by_name[raw] = d
            if m.HasField("alias"):
                scope.by_alias[m.alias] = d
        if collisions:
            result.rejected.append(
                ContractError(
                    Reason.PROTOCOL,
                    f"{t.message_type} metric names collide after mapping, the later one is "
                    f"not stored: {'; '.join(collisions)}"[:900],
                )
            )

    def _store(
        self,
        t: spb.SpTopic,
        device: str | None,
        scope: Scope,
        msg: spb.Payload,
        at: datetime,
        result: AdapterResult,
        birth: bool,
    ) -> tuple[int, dict[str, int]]:
        """Append the message's storable values as telemetry; values the BIRTH cannot place
        (undeclared, or colliding names) become `result.rejected`.

        Returns (values stored, values skipped by reason).
        """
        payload_ts = msg.timestamp or int(at.timestamp() * 1000)
        seq = msg.seq
        groups: dict[int, dict[str, float]] = {}
        texts: dict[int, dict[str, str]] = {}
        skipped: dict[str, int] = {}
        stored = 0
        unknown: list[str] = []
        collided: list[str] = []
        for m in msg.metrics:
            raw = m.name
            d = scope.by_name.get(raw) if raw else scope.by_alias.get(m.alias)
            if d is None:
                unknown.append(_show(raw) if raw else f"alias {m.alias}")
                continue
            if d.name is None or m.is_null:
                if d.collides_with is not None and not birth:
                    collided.append(_show(raw) if raw else f"alias {m.alias}")
                continue
            value: float | str | None
            if d.datatype in spb.TEXT:
                value = spb.text_value(m, d.datatype)
            else:
                value = spb.metric_value(m, d.datatype)
            if value is None:
                known = d.datatype in spb.NUMERIC or d.datatype in spb.TEXT
                reason = "bad_value" if known else "unsupported_type"
                if not birth or reason == "bad_value":
                    skipped[reason] = skipped.get(reason, 0) + 1
                continue
            ts = m.timestamp or payload_ts
            if ts > spb.MAX_EPOCH_MS:
                skipped["bad_value"] = skipped.get("bad_value", 0) + 1
                continue
            if isinstance(value, str):
                texts.setdefault(ts, {})[d.name] = value
            else:
                groups.setdefault(ts, {})[d.name] = value
            stored += 1
        if collided:
            skipped["name_collision"] = len(collided)
            result.rejected.append(
                ContractError(
                    Reason.PROTOCOL,
                    f"{t.message_type} values not stored, their names collide after mapping "
                    f"with another metric of the BIRTH: {', '.join(collided)}"[:900],
                )
            )
        for reason, n in skipped.items():
            self.metrics.skipped_metrics.labels(reason).inc(n)
        if unknown and not birth:
            # A metric the BIRTH did not declare: our view of the node is out of date.
            result.rejected.append(
                ContractError(
                    Reason.PROTOCOL,
                    f"{t.message_type} names {len(unknown)} metric(s) its BIRTH did not "
                    f"declare ({', '.join(unknown)}); not stored, the node is asked to "
                    "rebirth"[:900],
                )
            )
            node = self._nodes[(t.group, t.node)]
            self._request_rebirth(t, node, "unknown_metric", result)
        kind = NODE_KIND if device is None else DEVICE_KIND
        if groups:
            records: list[Telemetry] = []
            times: list[datetime] = []
            for ts, metrics in groups.items():
                when = _EPOCH + timedelta(milliseconds=ts)
                for chunk in _chunks(metrics):
                    records.append(Telemetry(ts=ts, seq=seq, metrics=chunk))
                    times.append(when)
            topic = Topic(t.group, kind, spb.device_id(t.node, device), "telemetry")
            result.items.append((topic, Decoded(records, times)))
        if texts:
            text_records = [TelemetryText(ts=ts, seq=seq, metrics=v) for ts, v in texts.items()]
            text_times = [_EPOCH + timedelta(milliseconds=ts) for ts in texts]
            topic = Topic(t.group, kind, spb.device_id(t.node, device), "telemetry_text")
            result.items.append((topic, Decoded(text_records, text_times)))
        return stored, skipped


def _show(raw: bytes) -> str:
    return repr(raw[:60].decode("utf-8", "replace"))


def create_adapter(
    settings: Settings, registry: CollectorRegistry | None = None
) -> SparkplugAdapter:
    """Entry point of the ingest adapter registry."""
    return SparkplugAdapter.from_settings(settings, registry)


def _chunks(metrics: dict[str, float]) -> list[dict[str, float]]:
    if len(metrics) <= MAX_METRICS_PER_RECORD:
        return [metrics]
    items = list(metrics.items())
    return [
        dict(items[i : i + MAX_METRICS_PER_RECORD])
        for i in range(0, len(items), MAX_METRICS_PER_RECORD)
    ]


def _command(out: spb.OutMessage) -> Command:
    return Command(out.topic, out.payload, out.qos, out.retain)


_Handler = Callable[[SparkplugAdapter, spb.SpTopic, spb.Payload, datetime], AdapterResult]
_HANDLERS: Final[dict[spb.MessageType, _Handler]] = {
    spb.MessageType.NBIRTH: SparkplugAdapter._nbirth,
    spb.MessageType.DBIRTH: SparkplugAdapter._dbirth,
    spb.MessageType.NDATA: SparkplugAdapter._data,
    spb.MessageType.DDATA: SparkplugAdapter._data,
    spb.MessageType.NDEATH: SparkplugAdapter._ndeath,
    spb.MessageType.DDEATH: SparkplugAdapter._ddeath,
}
