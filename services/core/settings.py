"""One `Settings` object for every service, read from `F5G_*` environment variables.

Sections are nested models so that each service's `--help` can list only what it reads;
the environment name of a nested key joins the parts with `__`, for example
`F5G_MQTT__HOST` or `F5G_INGEST__BATCH_MAX_ROWS`. Defaults match the local stack that
`factory5g stack up` starts, so nothing needs setting to try the platform.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "F5G_"
BOOTSTRAP_KEY_RE = re.compile(r"f5g_[A-Za-z0-9]{10}_[A-Za-z0-9_-]{32,}")
ENV_DELIMITER = "__"


class ConfigError(Exception):
    """Raised at start when a setting is invalid; the message names the environment key."""


class DatabaseSettings(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(
        "postgresql://factory5g@127.0.0.1:55432/factory5g",
        description="PostgreSQL + TimescaleDB connection URL (libpq form, no driver suffix) "
        "of the service's own role. With the password in it, or without and found by libpq "
        "in PGPASSFILE (the local stack's is .stack/postgres/pgpass, used when unset).",
    )
    pool_max: int = Field(8, ge=1, le=200, description="Maximum connections per pool.")
    connect_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Seconds to wait for one connection attempt."
    )


class MqttSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str = Field("127.0.0.1", description="MQTT v5 broker host.")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(None, description="MQTT user name for the service.")
    password: SecretStr | None = Field(None, description="MQTT password for the service.")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: str | None = Field(None, description="CA bundle to verify the broker (TLS).")
    cert_file: str | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: str | None = Field(None, description="Client key for mutual TLS.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive in seconds.")
    topic_root: str = Field(
        "f5g/v1", description="Root of the native topic tree: {root}/{project}/{kind}/{device}/..."
    )


class IngestSettings(BaseModel):
    model_config = {"extra": "forbid"}

    client_id: str = Field(
        "factory5g-ingest-0",
        description="Fixed MQTT client id; the persistent session is bound to it. "
        "Give each replica its own.",
    )
    share_group: str = Field(
        "",
        description="Shared-subscription group that ingest replicas split load in; empty (the "
        "default): no `$share`, lossless across a Mosquitto restart, which does not restore "
        "shared subscriptions; several replicas then split devices by hash (`shard_count`). Set "
        "it for several replicas on a clustered broker (EMQX).",
    )
    session_expiry_s: int = Field(
        3600, ge=1, description="How long the broker keeps the session (and queued messages)."
    )
    # 20,000: the session now keeps this limit itself (services/core/mqtt/connection.py);
    # at 8,000 with 5,000-row batches parsing waited on commits, and a 300,000-record drain
    # ran at 33,496 msg/s from its first row against 46,923 at 20,000 (RSS 81 against 99 MB).
    receive_maximum: int = Field(
        20000,
        ge=10,
        le=65535,
        description="MQTT v5 receive maximum: unacknowledged QoS 1 messages in flight.",
    )
    batch_max_rows: int = Field(5000, ge=1, le=200_000, description="Flush a batch at this size.")
    batch_max_delay_ms: int = Field(
        50, ge=1, le=10_000, description="Flush a batch at latest this long after its first row."
    )
    max_payload_bytes: int = Field(
        256 * 1024, ge=128, description="Larger payloads are dead-lettered as oversize."
    )
    max_future_s: float = Field(
        300.0, ge=0, description="Records timestamped further in the future are rejected."
    )
    max_past_s: float = Field(
        7 * 86400.0, ge=0, description="Records timestamped further in the past are rejected."
    )
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of /metrics and /healthz (0 disables)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds to.")
    writers: int = Field(
        3, ge=1, le=32, description="Database connections writing batches in parallel."
    )
    shutdown_timeout_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="On SIGTERM, wait this long to commit and acknowledge what was read; "
        "anything still unacknowledged is redelivered later.",
    )
    # Protocol adapters (Sparkplug B, VDA 5050); see docs/protocols.md.
    sparkplug_host_id: str = Field(
        "factory5g",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Sparkplug host application id: STATE topic spBv1.0/STATE/{id}.",
    )
    sparkplug_rebirth_min_interval_s: float = Field(
        5.0, ge=0, description="At most one Sparkplug rebirth request per edge node this often."
    )
    shard_index: int = Field(
        0, ge=0, description="This replica's shard of devices (0-based); see `shard_count`."
    )
    shard_count: int = Field(
        1,
        ge=1,
        description="Ingest replicas that split devices by stable hash: Sparkplug edge nodes, "
        "VDA 5050 AGVs, and native devices unless `share_group` is set.",
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Ingest processes on this host (`factory5g ingest --processes`). Process i "
        "has its own persistent session, client id `{client_id}-{i}of{processes}`, and shard "
        "`shard_index * processes + i` of `shard_count * processes`; its metrics port is "
        "`metrics_port + i`. Changing it starts new sessions: let the old ones drain first.",
    )
    vda5050_interface: str = Field(
        "uagv", description="VDA 5050 interface name: the first topic level."
    )
    vda5050_projects: dict[str, str] = Field(
        {},
        description="VDA 5050 manufacturer or manufacturer/serialNumber -> project (JSON).",
    )
    unknown_devices: Literal["accept", "dead_letter"] = Field(
        "accept",
        description="What ingest does with a device no admin registered: accept (store it and "
        "list it as unregistered) or dead_letter (reason unknown_device; a registration "
        "takes effect within 5 s). Retired devices count as unknown here.",
    )
    vda5050_default_project: str = Field(
        "vda5050",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Project of AGVs that vda5050_projects does not map.",
    )


class RulesSettings(BaseModel):
    model_config = {"extra": "forbid"}

    client_id: str = Field("factory5g-rules-0", description="Fixed MQTT client id of the replica.")
    rules_file: str | None = Field(
        None, description="YAML rule file; the built-in defaults apply when unset."
    )
    shard_index: int = Field(0, ge=0, description="This replica's shard (0-based).")
    shard_count: int = Field(1, ge=1, description="How many rules replicas share the devices.")
    session_expiry_s: int = Field(
        3600,
        ge=0,
        description="How long the broker keeps the replica's session (subscription and queued "
        "messages) while it is away, also across a broker restart; 0: a clean session, and "
        "what is published while the replica reconnects is never judged.",
    )
    metrics_port: int = Field(
        9102, ge=0, le=65535, description="Port of /metrics and /healthz (0 disables)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds to.")


_HOST_NAME: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class NotifySettings(BaseModel):
    model_config = {"extra": "forbid"}

    poll_interval_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="Seconds between looks at the outbox and the due deliveries when no "
        "wake-up arrives (the fallback of listen).",
    )
    listen: bool = Field(
        True,
        description="Wake up on PostgreSQL LISTEN/NOTIFY from the outbox trigger, so a "
        "transition is routed within milliseconds; the poll still runs.",
    )
    concurrency: int = Field(
        16, ge=1, le=1000, description="Deliveries sent at the same time by one notifier."
    )
    batch_size: int = Field(
        200, ge=1, le=10000, description="Outbox items routed, or deliveries claimed, per query."
    )
    batch_delay_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="Milliseconds the notifier waits after a wake-up to gather more work into "
        "one statement: fewer commits in an alarm storm, at most this much later.",
    )
    send_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Seconds one send may take before it counts as failed."
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a claimed delivery stays with its notifier; one claimed by a "
        "notifier that died is sent again after this. Must exceed send_timeout_s.",
    )
    retry_base_s: float = Field(
        1.0, gt=0, le=3600, description="First retry delay; doubled per attempt, with jitter."
    )
    retry_max_s: float = Field(
        300.0, gt=0, le=86400, description="Longest delay between two attempts."
    )
    give_up_after_s: float = Field(
        86400.0,
        gt=0,
        description="Seconds after it was queued that a delivery still failing is given up.",
    )
    escalation_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Seconds between looks for alarms due an escalation."
    )
    dashboard_url: str | None = Field(
        None,
        description="Base URL of the dashboard, for the alarm link in notifications (none "
        "when unset).",
    )
    metrics_port: int = Field(
        9104, ge=0, le=65535, description="Port of /metrics and /healthz (0 disables)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds to.")
    allow_private_targets: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Networks (CIDR, e.g. 10.20.0.0/16 or 127.0.0.1) and host names the HTTP "
        "channels may reach although loopback or private. Empty (the default): channel URLs "
        "must resolve to global addresses. Link-local and cloud metadata addresses "
        "(169.254.169.254) are refused whatever this says. The local stack sets 127.0.0.0/8 "
        "for its receivers. Read by the API (checked when a channel is saved) and the "
        "notifier (checked after DNS resolution when sending).",
    )

    @field_validator("allow_private_targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOST_NAME.match(entry):
                    raise ValueError(
                        f"{entry!r} is neither a network (CIDR) nor a host name"
                    ) from None
        return value

    @model_validator(mode="after")
    def _lease_covers_send(self) -> NotifySettings:
        if self.lease_s <= self.send_timeout_s:
            raise ValueError("lease_s must exceed send_timeout_s, or a slow send is claimed twice")
        return self


class ApiSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, ge=1, le=65535, description="API port (docs at /docs).")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    rollup_interval_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="Seconds between rollup passes run inside the API (0: run `factory5g "
        "rollup` instead).",
    )
    key_cache_s: float = Field(
        5.0, ge=0, le=300, description="Seconds a checked API key is trusted before re-reading."
    )
    max_points: int = Field(5000, ge=10, le=100_000, description="Most points one series returns.")
    max_range_days: int = Field(
        400, ge=1, le=3650, description="Longest time range a query may ask for."
    )
    export_max_rows: int = Field(
        5_000_000,
        ge=1,
        le=1_000_000_000,
        description="Most raw rows one CSV export (`export/{stream}.csv`) may stream; a "
        "larger request is refused with 413 and asked to narrow the range or name a device.",
    )
    rate_limit_per_s: float = Field(
        100.0,
        ge=0,
        description="Sustained requests per second per API key and process. 0 turns the "
        "limit off: an explicit opt-out, for benchmarks that drive one key hard.",
    )
    rate_limit_burst: int = Field(400, ge=1, description="Requests a key may make at once.")
    auth_failures_per_s: float = Field(
        1.0,
        ge=0,
        description="Sustained failed authentications per second per client address and "
        "process; beyond them unproven keys get 429 before a database lookup (0: no limit).",
    )
    auth_failure_burst: int = Field(
        20, ge=1, description="Failed authentications a client address may make at once."
    )
    live_max_s: float = Field(
        600.0,
        ge=0.1,
        le=86400,
        description="Seconds a dashboard live stream lasts before the server ends it (the page "
        "reconnects, so a revoked key loses its stream within this time).",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )
    bootstrap_key: SecretStr | None = Field(
        None,
        description="Admin API key made sure to exist at start, for the first access to a new "
        "deployment: f5g_<10 letters or digits>_<32 or more of A-Z a-z 0-9 _ ->. Revoking it "
        "with `factory5g keys revoke` sticks.",
    )

    retention_interval_s: float = Field(
        3600.0,
        ge=0,
        le=86400,
        description="Seconds between retention passes run inside the API (policies set through "
        "/api/v1/retention; 0: run `factory5g retention` instead).",
    )
    broker_auth_dir: Path | None = Field(
        None,
        description="Broker account directory the API shares with the broker (the local "
        "stack's): credentials issued through the API are kept there and applied live. "
        "Unset, with broker_admin_password, they go through `$CONTROL` alone.",
    )
    broker_admin_password: SecretStr | None = Field(
        None,
        description="Password of the broker's dynamic-security account `factory5g-admin`: "
        "without broker_auth_dir the API applies credentials through `$CONTROL` at "
        "mqtt.host:mqtt.port (TLS as for the services), the broker's own dynamic-security "
        "file being the persistent copy (Kubernetes). Neither set: credential routes "
        "answer 503.",
    )

    @field_validator("bootstrap_key")
    @classmethod
    def _bootstrap_key_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not BOOTSTRAP_KEY_RE.fullmatch(value.get_secret_value()):
            raise ValueError("must look like f5g_<10 letters or digits>_<32+ characters>")
        return value


class CommandsSettings(BaseModel):
    model_config = {"extra": "forbid"}

    client_id: str = Field(
        "factory5g-commands-0",
        description="Fixed MQTT client id of the commander; its persistent session (replies "
        "queued while it was away) is bound to it.",
    )
    session_expiry_s: int = Field(
        3600, ge=1, description="How long the broker keeps the commander's session."
    )
    poll_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between scans for queued commands and passed deadlines (new "
        "commands also wake the commander at once by the API's `queued` announcement).",
    )
    batch_max: int = Field(200, ge=1, le=10_000, description="Most commands claimed at once.")
    default_timeout_s: float = Field(
        30.0, gt=0, le=86400, description="Deadline of a command that names none."
    )
    max_timeout_s: float = Field(
        3600.0, gt=0, le=7 * 86400, description="Longest deadline a command may ask for."
    )
    rate_per_device: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Commands one device may receive per rate_window_s; more get 429.",
    )
    rate_window_s: float = Field(
        10.0, gt=0, le=3600, description="Window of the per-device command rate limit."
    )
    metrics_port: int = Field(
        9103, ge=0, le=65535, description="Port of /metrics and /healthz (0 disables)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds to.")


class SimulatorSettings(BaseModel):
    model_config = {"extra": "forbid"}

    projects: int = Field(3, ge=1, le=1000, description="Demonstration projects to simulate.")
    stations: int = Field(4, ge=0, description="Vision-inspection stations per project.")
    agvs: int = Field(6, ge=0, description="AGVs per project.")
    modules: int = Field(4, ge=0, description="5G modules / CPEs per project.")
    machines: int = Field(2, ge=0, description="Machines publishing generic telemetry per project.")
    vda5050_agvs: int = Field(
        2,
        ge=0,
        le=1000,
        description="AGVs speaking VDA 5050 v2 (manufacturer SimRobotics; map it to a project "
        "with ingest.vda5050_projects). 0 disables.",
    )
    sparkplug_lines: int = Field(
        1,
        ge=0,
        le=100,
        description="Production lines, each one Sparkplug B edge node (group = a simulated "
        "project, node lineN, one device per machine). 0 disables.",
    )
    rate_hz: float = Field(2.0, gt=0, le=1000, description="Messages per second per device.")
    fault_probability: float = Field(
        0.002, ge=0, le=1, description="Chance per message that a device enters a fault episode."
    )
    seed: int | None = Field(None, description="Random seed for reproducible runs.")


class AvailabilitySettings(BaseModel):
    """5G communication service availability (3GPP TS 22.261 / TS 22.104, docs/plant.md).

    Why a floor: outages are kept as a table of silences longer than `gap_floor_s`, so a
    flow's deadline (transfer interval + survival time) may not be shorter than the floor;
    a shorter one would need silences the table never kept."""

    model_config = {"extra": "forbid"}

    transfer_interval_s: float = Field(
        10.0,
        gt=0,
        le=86_400,
        description="Default transfer interval of a device's link stream, in seconds (a "
        "project or device profile may set its own through the API).",
    )
    survival_time_s: float = Field(
        5.0,
        ge=0,
        le=86_400,
        description="Default survival time in seconds: how long after a missed transfer "
        "interval the service still counts as available.",
    )
    gap_floor_s: float = Field(
        15.0,
        gt=0,
        le=86_400,
        description="Silences of a link stream longer than this are kept as candidate "
        "outages; every flow's transfer interval + survival time must be at least this.",
    )
    target_pct: float = Field(
        99.99,
        gt=0,
        le=100,
        description="Availability target in percent when the project has no "
        "`availability_pct` target (99.99 = URLLC class of TS 22.261).",
    )
    latency_p99_target_ms: float = Field(
        20.0,
        gt=0,
        description="Latency p99 target in ms when the project has no `latency_p99_ms` target.",
    )

    @model_validator(mode="after")
    def _deadline_over_floor(self) -> AvailabilitySettings:
        if self.transfer_interval_s + self.survival_time_s < self.gap_floor_s:
            raise ValueError("transfer_interval_s + survival_time_s must be at least gap_floor_s")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    log_level: str = Field(
        "INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)  # type: ignore[arg-type]
    mqtt: MqttSettings = Field(default_factory=MqttSettings)  # type: ignore[arg-type]
    ingest: IngestSettings = Field(default_factory=IngestSettings)  # type: ignore[arg-type]
    rules: RulesSettings = Field(default_factory=RulesSettings)  # type: ignore[arg-type]
    notify: NotifySettings = Field(default_factory=NotifySettings)  # type: ignore[arg-type]
    api: ApiSettings = Field(default_factory=ApiSettings)  # type: ignore[arg-type]
    commands: CommandsSettings = Field(default_factory=CommandsSettings)  # type: ignore[arg-type]
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)  # type: ignore[arg-type]
    availability: AvailabilitySettings = Field(default_factory=AvailabilitySettings)  # type: ignore[arg-type]


def env_name(loc: tuple[Any, ...]) -> str:
    """Environment variable that sets the field at a pydantic error location."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + ENV_DELIMITER.join(p.upper() for p in parts)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning validation errors into one message that names each bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [f"{env_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def env_default(field: FieldInfo) -> str:
    """A field's default as its environment variable would spell it: lists and maps (built by
    a default factory) as JSON, secrets masked, no default as "(unset)"."""
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "(unset)"
    if isinstance(default, SecretStr):
        return "***"
    if isinstance(default, list | dict | tuple):
        return json.dumps(default)
    return str(default)


def describe(section: type[BaseModel], prefix: str) -> str:
    """Plain-text table of a section's environment keys, defaults and meaning, for --help."""
    lines = []
    for name, field in section.model_fields.items():
        default = env_default(field)
        key = f"{ENV_PREFIX}{prefix.upper()}{ENV_DELIMITER}{name.upper()}"
        lines.append(f"{key}={default}  {field.description or ''}")
    return "\n".join(lines)
