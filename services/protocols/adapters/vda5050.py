"""VDA 5050 v2 adapter: AGV `state` into the AGV store, `connection` into online state.

Topics are `{interface}/v2/{manufacturer}/{serialNumber}/{state|connection}`. The AGV's
platform device id is `{manufacturer}.{serialNumber}` (characters outside the id grammar
become `_`), because serial numbers are unique only per manufacturer. Its project comes
from `vda5050_projects` (key `manufacturer/serialNumber` first, then `manufacturer`),
else `vda5050_default_project`.

Payloads are checked with msgspec structs holding just the fields the platform uses,
shaped like the official `state.schema` and `connection.schema`; other fields pass.
`headerId` increases by one per message and topic, so a jump means messages were lost
between AGV and broker: counted in `factory5g_ingest_vda5050_header_gaps_total`.
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta
from prometheus_client import CollectorRegistry, Counter

from services.core.contracts import (
    AgvRecord,
    ContractError,
    Decoded,
    Reason,
    Topic,
    check_depth,
    is_valid_id,
    parse_ts,
)
from services.core.metrics import metric_name
from services.core.settings import Settings
from services.protocols.adapters.base import AdapterResult, DeviceEvent

KIND: Final = "agv"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ID_BAD: Final = re.compile(r"[^A-Za-z0-9_-]")


class Vda5050Metrics:
    """The adapter's counters, registered on the registry of the service that exports them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.header_gaps = Counter(
            metric_name("ingest", "vda5050_header_gaps", "total"),
            "VDA 5050 messages whose headerId skipped ahead (messages lost before the broker).",
            ["topic"],
            registry=registry,
        )
        self.lost_messages = Counter(
            metric_name("ingest", "vda5050_lost_messages", "total"),
            "VDA 5050 messages missing according to headerId jumps.",
            ["topic"],
            registry=registry,
        )


HeaderId = Annotated[int, Meta(ge=0, le=4294967295)]


class AgvPosition(msgspec.Struct):
    x: float
    y: float
    theta: float
    mapId: str  # noqa: N815 - VDA 5050 field names
    positionInitialized: bool  # noqa: N815
    localizationScore: Annotated[float, Meta(ge=0, le=1)] | None = None  # noqa: N815


class Velocity(msgspec.Struct):
    vx: float | None = None
    vy: float | None = None
    omega: float | None = None


class BatteryState(msgspec.Struct):
    batteryCharge: float  # noqa: N815
    charging: bool


class SafetyState(msgspec.Struct):
    eStop: Literal["AUTOACK", "MANUAL", "REMOTE", "NONE"]  # noqa: N815
    fieldViolation: bool  # noqa: N815


class Error(msgspec.Struct):
    errorType: str  # noqa: N815
    errorLevel: Literal["WARNING", "FATAL"]  # noqa: N815
    errorDescription: str | None = None  # noqa: N815


class ActionState(msgspec.Struct):
    actionId: str  # noqa: N815
    actionStatus: Literal[  # noqa: N815
        "WAITING", "INITIALIZING", "RUNNING", "PAUSED", "FINISHED", "FAILED"
    ]
    actionType: str | None = None  # noqa: N815


class State(msgspec.Struct):
    headerId: HeaderId  # noqa: N815
    timestamp: str
    version: str
    manufacturer: str
    serialNumber: str  # noqa: N815
    orderId: str  # noqa: N815
    driving: bool
    operatingMode: Literal["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL", "SERVICE", "TEACHIN"]  # noqa: N815
    batteryState: BatteryState  # noqa: N815
    errors: list[Error]
    safetyState: SafetyState  # noqa: N815
    actionStates: list[ActionState] = []  # noqa: N815
    agvPosition: AgvPosition | None = None  # noqa: N815
    velocity: Velocity | None = None


class Connection(msgspec.Struct):
    headerId: HeaderId  # noqa: N815
    timestamp: str
    version: str
    manufacturer: str
    serialNumber: str  # noqa: N815
    connectionState: Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN"]  # noqa: N815


_STATE: Final = msgspec.json.Decoder(State)
_CONNECTION: Final = msgspec.json.Decoder(Connection)
_LOADING_ACTIONS: Final = frozenset({"pick", "drop"})
_NUL_ESCAPE: Final = b"\\u0000"  # JSON can express NUL only as this escape


def agv_state(s: State) -> str:
    """Our one-word AGV state, most severe first: a safety stop outranks everything."""
    if s.safetyState.eStop != "NONE" or s.safetyState.fieldViolation:
        return "estop"
    if any(e.errorLevel == "FATAL" for e in s.errors):
        return "error"
    if s.batteryState.charging:
        return "charging"
    if s.driving:
        return "moving"
    if any(
        a.actionStatus == "RUNNING" and (a.actionType or "").lower() in _LOADING_ACTIONS
        for a in s.actionStates
    ):
        return "loading"
    return "idle"


class Vda5050Adapter:
    name = "vda5050"

    def __init__(
        self,
        interface: str = "uagv",
        projects: dict[str, str] | None = None,
        default_project: str = "vda5050",
        shard_index: int = 0,
        shard_count: int = 1,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`registry`: where the counters are exported. Without one (the passive copy in
        the rules service, tests) they count into a private registry nobody scrapes."""
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} outside 0..{shard_count - 1}")
        self.metrics = Vda5050Metrics(registry if registry is not None else CollectorRegistry())
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.interface = interface
        self.projects = dict(projects or {})
        self.default_project = default_project
        for key, project in [*self.projects.items(), ("default", default_project)]:
            if not is_valid_id(project):
                raise ValueError(f"VDA 5050 project {project!r} for {key!r} is not a valid id")
        self._prefix = f"{interface}/v2/"
        # (manufacturer, serial, topic) -> last headerId
        self._headers: dict[tuple[str, str, str], int] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> Vda5050Adapter:
        s = settings.ingest
        return cls(
            s.vda5050_interface,
            s.vda5050_projects,
            s.vda5050_default_project,
            s.shard_index,
            s.shard_count,
            registry=registry,
        )

    def topic_filters(self) -> list[str]:
        return [f"{self._prefix}+/+/state", f"{self._prefix}+/+/connection"]

    def shared(self) -> bool:
        # headerId gaps are tracked per AGV; a shared subscription would split one AGV's
        # messages across replicas and show gaps that are not losses. Replicas shard AGVs
        # by stable hash instead, like Sparkplug edge nodes.
        return False

    def owns(self, manufacturer: str, serial: str) -> bool:
        if self.shard_count == 1:
            return True
        key = f"{manufacturer}/{serial}".encode()
        return zlib.crc32(key) % self.shard_count == self.shard_index

    def matches(self, topic: str) -> bool:
        return topic.startswith(self._prefix) and topic.endswith(("/state", "/connection"))

    def project_for(self, manufacturer: str, serial: str) -> str:
        return self.projects.get(f"{manufacturer}/{serial}") or self.projects.get(
            manufacturer, self.default_project
        )

    def device_for(self, manufacturer: str, serial: str) -> tuple[str, str]:
        """(project, device id) of an AGV."""
        project = self.project_for(manufacturer, serial)
        device = f"{_ID_BAD.sub('_', manufacturer)}.{_ID_BAD.sub('_', serial)}"
        if not is_valid_id(device):
            raise ContractError(
                Reason.BAD_TOPIC, f"AGV id {device[:80]!r} is not 1-64 characters long"
            )
        return project, device

    def attribute(self, topic: str) -> tuple[str | None, str | None]:
        """Project and device of a rejected message, mapped exactly as its states would be."""
        parts = topic.split("/")
        if len(parts) != 5 or not topic.startswith(self._prefix) or not all(parts):
            return None, None
        manufacturer, serial = parts[2], parts[3]
        try:
            return self.device_for(manufacturer, serial)
        except ContractError:  # an id too long: the project mapping still applies
            return self.project_for(manufacturer, serial), None

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> AdapterResult:
        parts = topic.split("/")
        if len(parts) != 5 or not topic.startswith(self._prefix) or not all(parts):
            raise ContractError(
                Reason.BAD_TOPIC,
                f"expected {self._prefix}{{manufacturer}}/{{serialNumber}}/{{state|connection}}",
            )
        manufacturer, serial, sub = parts[2], parts[3], parts[4]
        if not self.owns(manufacturer, serial):
            return AdapterResult()
        project, device = self.device_for(manufacturer, serial)
        if sub == "state":
            return self._state(project, device, manufacturer, serial, payload)
        if sub == "connection":
            return self._connection(project, device, manufacturer, serial, payload, received_at)
        raise ContractError(Reason.UNKNOWN_STREAM, f"VDA 5050 topic {sub[:40]!r} is not ingested")

    def _state(
        self, project: str, device: str, manufacturer: str, serial: str, payload: bytes
    ) -> AdapterResult:
        if _NUL_ESCAPE in payload:
            # PostgreSQL text cannot hold NUL: refused here with a clear reason rather than
            # by the database, which would cost the whole batch a rewrite message by message.
            raise ContractError(Reason.SCHEMA, "strings must not contain NUL (\\u0000)")
        s: State = _parse(_STATE, payload)
        _check_identity(s.manufacturer, s.serialNumber, manufacturer, serial)
        when = parse_ts(s.timestamp)
        self._check_header(manufacturer, serial, "state", s.headerId)
        # agvPosition and velocity are optional in VDA 5050 (a line-guided AGV has no map
        # position): what the state does not say is stored as NULL, never guessed.
        pos = s.agvPosition
        x = y = heading = localization = map_id = None
        if pos is not None:
            x, y, heading = pos.x, pos.y, _heading(pos.theta)
            map_id = pos.mapId[:64] or None
            if pos.localizationScore is not None:
                localization = pos.localizationScore
            else:
                localization = 1.0 if pos.positionInitialized else 0.0
        v = s.velocity
        speed = None
        if v is not None and (v.vx is not None or v.vy is not None):
            speed = math.hypot(v.vx or 0.0, v.vy or 0.0)
        fatal = [e for e in s.errors if e.errorLevel == "FATAL"]
        errors = fatal or s.errors
        record: dict[str, Any] = {
            "ts": int((when - _EPOCH) / timedelta(milliseconds=1)),
            "seq": s.headerId,
            "x": x,
            "y": y,
            "heading": heading,
            "speed": speed,
            "battery": s.batteryState.batteryCharge,
            "state": agv_state(s),
            "localization": localization,
            "task_id": s.orderId[:128] or None,
            "error_code": (errors[0].errorType[:64] or None) if errors else None,
            "map_id": map_id,
        }
        try:
            status = msgspec.convert(record, AgvRecord)
        except msgspec.ValidationError as exc:
            raise ContractError(Reason.SCHEMA, f"state out of range: {exc}") from None
        result = AdapterResult()
        result.items.append((Topic(project, KIND, device, "agv"), Decoded([status], [when])))
        return result

    def _connection(
        self,
        project: str,
        device: str,
        manufacturer: str,
        serial: str,
        payload: bytes,
        received_at: datetime,
    ) -> AdapterResult:
        c: Connection = _parse(_CONNECTION, payload)
        _check_identity(c.manufacturer, c.serialNumber, manufacturer, serial)
        when = parse_ts(c.timestamp)
        self._check_header(manufacturer, serial, "connection", c.headerId)
        result = AdapterResult()
        online = c.connectionState == "ONLINE"
        if c.connectionState == "CONNECTIONBROKEN":
            # A will: its timestamp is from when the AGV connected, older than the states
            # that followed, so it would lose to them. It happens when the broker sends it.
            when = max(when, received_at)
        result.events.append(DeviceEvent(project, device, KIND, online, when))
        return result

    def _check_header(self, manufacturer: str, serial: str, topic: str, header: int) -> None:
        key = (manufacturer, serial, topic)
        last = self._headers.get(key)
        self._headers[key] = header
        # Equal: redelivery. Lower: the AGV restarted its counter. Neither is a loss.
        if last is not None and header > last + 1:
            self.metrics.header_gaps.labels(topic).inc()
            self.metrics.lost_messages.labels(topic).inc(header - last - 1)


def _parse(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    # The structs type only what the platform reads and let every other field pass, which
    # msgspec skips recursively: the nesting is bounded before it starts.
    check_depth(payload)
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ContractError(Reason.SCHEMA, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ContractError(Reason.INVALID_JSON, str(exc)) from None


def _check_identity(manufacturer: str, serial: str, topic_mfr: str, topic_serial: str) -> None:
    if manufacturer != topic_mfr or serial != topic_serial:
        raise ContractError(
            Reason.PROTOCOL,
            f"payload names {manufacturer[:40]!r}/{serial[:40]!r}, topic "
            f"{topic_mfr[:40]!r}/{topic_serial[:40]!r}",
        )


def _heading(theta: float) -> float:
    """VDA 5050 theta (radians, -pi..pi) -> our heading in degrees, -180..180."""
    if not math.isfinite(theta):
        raise ContractError(Reason.SCHEMA, "agvPosition.theta is not a finite number")
    return math.degrees(math.remainder(theta, math.tau))


def create_adapter(settings: Settings, registry: CollectorRegistry | None = None) -> Vda5050Adapter:
    """Entry point of the ingest adapter registry."""
    return Vda5050Adapter.from_settings(settings, registry)
