"""Database tables, described once with SQLAlchemy Core.

Alembic migrations create them (with their DDL written out, as it was); the API builds
queries from them; the ingest hot path writes the stream tables with binary COPY using
`STREAM_COLUMNS` below. The stream tables' columns come from the stream definitions
(services/core/streams.py), so column order lives in one place. Stream tables are
TimescaleDB hypertables on `ts`; their unique index (project, device, seq, ts) is what makes
QoS 1 redelivery idempotent.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services.core.streams import INGEST_DEFS, STREAM_DEFS

metadata = MetaData()


def _ts(name: str = "ts", nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


projects = Table(
    "projects",
    metadata,
    Column("id", Text, primary_key=True, comment="Project id as used in topics."),
    Column("name", Text, nullable=False),
    Column("enterprise", Text, nullable=True),
    Column("city", Text, nullable=True),
    Column("scenario", Text, nullable=True, comment="e.g. vision inspection, AGV logistics"),
    Column("status", Text, nullable=False, server_default="active"),
    Column("targets", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

devices = Table(
    "devices",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("online", Boolean, nullable=False, server_default=text("true")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The registry (0009_admin): unregistered (seen by ingest only) | registered | retired.
    Column("status", Text, nullable=False, server_default="unregistered"),
    Column("profiles", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("registered_at", DateTime(timezone=True), nullable=True),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Index("ix_devices_project_kind", "project_id", "kind"),
)

# Column types of services/core/streams.py.
_STREAM_SQL: Final[dict[str, Any]] = {
    "double": Double,
    "text": Text,
    "boolean": Boolean,
    "smallint": SmallInteger,
    "bigint": BigInteger,
    "jsonb": JSONB,
    "timestamptz": DateTime(timezone=True),
}


def _stream_table(stream: str) -> Table:
    """The table of a stream, column by column from its definition (services/core/streams.py)."""
    d = INGEST_DEFS[stream]
    return Table(
        d.table,
        metadata,
        *(Column(c.name, _STREAM_SQL[c.sql], nullable=c.nullable) for c in d.columns),
    )


inspections = _stream_table("inspection")
# NULL where the AGV did not report it (VDA 5050 position and velocity are optional).
agv_status = _stream_table("agv")
link_kpis = _stream_table("link")
telemetry = _stream_table("telemetry")
# Text values (Sparkplug B String and Text metrics): the numeric `telemetry` table cannot
# hold them. Written by ingest like the stream tables; a plain table (migration
# 0007_optional_position), as string metrics are states, recipes and versions that change
# rarely, not a high-rate stream.
telemetry_text = _stream_table("telemetry_text")

alarms = Table(
    "alarms",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("project_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False, comment="open | acknowledged | cleared"),
    Column("message", Text, nullable=False, server_default=""),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("last_value", Double, nullable=True),
    Column("evidence", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_by", Text, nullable=True),
    Column("cleared_at", DateTime(timezone=True), nullable=True),
    Index("ix_alarms_project_opened", "project_id", "opened_at"),
    Index("ix_alarms_device_rule", "project_id", "device_id", "rule"),
    # One alarm per (device, rule) may be active; cleared ones are history.
    Index(
        "uq_alarms_active",
        "project_id",
        "device_id",
        "rule",
        unique=True,
        postgresql_where=text("state <> 'cleared'"),
    ),
)

alarm_events = Table(
    "alarm_events",
    metadata,
    _ts(),
    Column("alarm_id", BigInteger, nullable=False),
    Column("project_id", Text, nullable=False),
    Column(
        "transition", Text, nullable=False, comment="opened|updated|escalated|acknowledged|cleared"
    ),
    Column("severity", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Column("evidence", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_alarm_events_alarm", "alarm_id", "ts"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("project_id", Text, nullable=True),
    Column("device_id", Text, nullable=True),
    Column("payload", LargeBinary, nullable=True, comment="First bytes of the payload."),
    Column("payload_size", Integer, nullable=False),
    Index("ix_dead_letters_reason", "reason", "received_at"),
    Index("ix_dead_letters_device", "project_id", "device_id", "received_at"),
)

# Hypertables: table -> chunk interval. Stream chunks of a day keep the recent working set
# (and its indexes) in memory at tens of thousands of rows per second.
HYPERTABLES: Final[dict[str, str]] = {
    "inspections": "1 day",
    "agv_status": "1 day",
    "link_kpis": "1 day",
    "telemetry": "1 day",
    "alarm_events": "7 days",
    "dead_letters": "7 days",
}

# Stream name in the topic -> table written by ingest.
STREAM_TABLES: Final[dict[str, Table]] = {
    name: metadata.tables[d.table] for name, d in STREAM_DEFS.items()
}

# Every table ingest writes rows to, by the stream name its rows carry: the native streams
# and the text values that only protocol adapters produce.
INGEST_TABLES: Final[dict[str, Table]] = {
    name: metadata.tables[d.table] for name, d in INGEST_DEFS.items()
}

# Column order for binary COPY, per table ingest writes.
STREAM_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    t.name: tuple(c.name for c in t.columns) for t in INGEST_TABLES.values()
}

# Natural key of a stream row: what makes a redelivered record the same record. Its unique
# index leads with (project, device[, metric], ts) so it also serves "one device, recent time".
STREAM_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "inspections": ("project_id", "device_id", "ts", "seq"),
    "agv_status": ("project_id", "device_id", "ts", "seq"),
    "link_kpis": ("project_id", "device_id", "ts", "seq"),
    "telemetry": ("project_id", "device_id", "metric", "ts", "seq"),
}

# High-rate stream tables without a (project_id, ts) index (migration 0005): project-wide
# reads of them go through the rollups, and each index costs every insert.
UNINDEXED_BY_PROJECT: Final = ("agv_status", "link_kpis", "telemetry")

# --------------------------------------------------------------------------- API (0003_api)

api_keys = Table(
    "api_keys",
    metadata,
    Column("prefix", Text, primary_key=True, comment="Visible part of the key, for lookup."),
    Column("hash", Text, nullable=False, comment="sha256 hex of the whole key."),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False, comment="read | operate | admin"),
    Column("projects", ARRAY(Text), nullable=True, comment="Visible projects; NULL = all."),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Per-spec, per-resolution high-water mark: buckets before it are complete in the rollup.
rollup_watermarks = Table(
    "rollup_watermarks",
    metadata,
    Column("spec", Text, primary_key=True),
    Column("resolution", Text, primary_key=True),
    Column("watermark", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# The rollup tables themselves (rollup_<spec>_<1m|1h>) are generated from their column
# specs in services/api/rollups/specs.py, where the SQL that fills them is generated too.

# ------------------------------------------------------------------ administration (0009_admin)

# Every administrative and operator act, written in the transaction of the act; the API
# role may only append and read. `ts` and `db_user` are stamped by a trigger.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False, comment="API key name, or cli:<login>"),
    Column("actor_key", Text, nullable=True, comment="Prefix of the acting API key."),
    Column("action", Text, nullable=False, comment="e.g. key.create, alarm.acknowledge"),
    Column("target_type", Text, nullable=False),
    Column("target_id", Text, nullable=False),
    Column("project_id", Text, nullable=True),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("db_user", Text, nullable=False, server_default=text("session_user")),
)

# Broker accounts issued through the API (no secret: the broker keeps only hashes).
broker_credentials = Table(
    "broker_credentials",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False),
    Column("type", Text, nullable=False, comment="native | sparkplug | vda5050 | alarms"),
    Column("project_id", Text, nullable=False),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# How long each raw store and rollup resolution is kept (no row: for ever).
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("target", Text, primary_key=True, comment="a stream table, rollup_1m or rollup_1h"),
    Column("keep", Interval, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", Text, nullable=False),
)

# Rule documents submitted through the API (pending | active | rejected | superseded).
rule_versions = Table(
    "rule_versions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("yaml", Text, nullable=False),
    Column("diff", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("error", Text, nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
)

# Requests for a device's effective rules, answered by the rules service (0011).
rule_effective_requests = Table(
    "rule_effective_requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("project_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("kinds", ARRAY(Text), nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("result", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
)

# Backtests of rule documents, run by the rules service over stored history.
rule_backtests = Table(
    "rule_backtests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("yaml", Text, nullable=False),
    Column("project_id", Text, nullable=True),
    Column("range_start", DateTime(timezone=True), nullable=False),
    Column("range_end", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("result", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
)

# --------------------------------------------------------------------- commands (0010_commands)

# Per project and device kind, the command names that may be sent; nothing by default.
command_allow = Table(
    "command_allow",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=True),
)

commands = Table(
    "commands",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, comment="Also the correlation data."),
    Column("project_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("protocol", Text, nullable=False, server_default="native"),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "state",
        Text,
        nullable=False,
        server_default="queued",
        comment="queued|sent|accepted|rejected|completed|failed|expired",
    ),
    Column("actor", Text, nullable=False, comment="Name of the API key that asked."),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("sends", Integer, nullable=False, server_default=text("0")),
    Column("message", Text, nullable=True),
    Column("result", JSONB, nullable=True),
)

command_events = Table(
    "command_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("command_id", UUID(as_uuid=True), nullable=False),
    Column("project_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("state", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

# How to reach a device that is not native, as the commander learnt it from its messages.
command_targets = Table(
    "command_targets",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("protocol", Text, nullable=False, comment="vda5050 | sparkplug"),
    Column("address", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# VDA 5050 headerId per topic: persisted so that a restart never counts backwards.
command_headers = Table(
    "command_headers",
    metadata,
    Column("topic", Text, primary_key=True),
    Column("header_id", BigInteger, nullable=False),
)

# Floor maps (0014_floor_maps): per project and map the floor-plan image, the extent in metres
# it covers and the named zones, set by administrators through the API.
floor_maps = Table(
    "floor_maps",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("map_id", Text, primary_key=True),
    Column("x0", Double, nullable=True),
    Column("y0", Double, nullable=True),
    Column("x1", Double, nullable=True),
    Column("y1", Double, nullable=True),
    Column("image", LargeBinary, nullable=True),
    Column("image_type", Text, nullable=True, comment="image/png | image/jpeg"),
    Column("zones", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# ------------------------------------------- 5G service availability (0013_service_availability)

# Transfer interval and survival time of a project's flows, per device profile; the
# profile `*` is the project's default (docs/plant.md).
availability_flows = Table(
    "availability_flows",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("profile", Text, primary_key=True, comment="Device profile, or * for the project."),
    Column("transfer_interval_s", Double, nullable=False),
    Column("survival_time_s", Double, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Silences of a device's link stream longer than the gap floor: (last message, next message).
link_gaps = Table(
    "link_gaps",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("last_ts", DateTime(timezone=True), primary_key=True),
    Column("next_ts", DateTime(timezone=True), nullable=False),
    Index("ix_link_gaps_project_next", "project_id", "next_ts"),
    Index("ix_link_gaps_next", "next_ts"),
)
# --------------------------------------------------------------------------- OEE (0012_oee)

# Per project: shifts, time zone, ideal cycle times, reason names (validated by the API).
oee_settings = Table(
    "oee_settings",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("settings", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", Text, nullable=False),
)


# Seconds per (state, reason) of one machine in one five-minute (one-hour) bucket, kept by
# the rollup maintainer; reason 0 = none given.
def _oee_states(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", Text, primary_key=True),
        Column("bucket", DateTime(timezone=True), primary_key=True),
        Column("device_id", Text, primary_key=True),
        Column("state", SmallInteger, primary_key=True),
        Column("reason", Integer, primary_key=True),
        Column("seconds", Double, nullable=False),
        Column("entries", Integer, nullable=False),
    )


# Counter deltas (produced, good) of one machine in one five-minute (one-hour) bucket.
def _oee_counts(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", Text, primary_key=True),
        Column("bucket", DateTime(timezone=True), primary_key=True),
        Column("device_id", Text, primary_key=True),
        Column("produced", Double, nullable=False),
        Column("good", Double, nullable=False),
    )


oee_states_5m = _oee_states("oee_states_5m")
oee_states_1h = _oee_states("oee_states_1h")
oee_counts_5m = _oee_counts("oee_counts_5m")
oee_counts_1h = _oee_counts("oee_counts_1h")

oee_watermark = Table(
    "oee_watermark",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("watermark", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
