"""Notifications: channels, routes, escalation policies, a durable outbox and deliveries.

The outbox row of an alarm transition is written by an AFTER INSERT trigger on
`alarm_events`, so it commits or rolls back with the transition itself whoever wrote it
(the rules service's single and bulk statements, an operator through the API). `updated`
transitions are not notified: only `opened`, `escalated`, `acknowledged` and `cleared`.
The trigger stores the event (severity, actor, evidence); the router completes the
snapshot with the alarm and its device when it routes the item, milliseconds later, and
stores it with the item, so every route and retry says the same thing. It wakes the
notifier with
`pg_notify('factory5g_notify', '')`; PostgreSQL folds identical notifications of one
transaction into one, so a bulk statement of 1000 openings sends one wake-up.

The trigger function is SECURITY DEFINER (owned by the schema owner): the rules and API
roles need no right on the outbox to write transitions.

`notify_deliveries` holds one row per (outbox item, route) with a UNIQUE idempotency key:
routing an item twice (a notifier that died after inserting, before marking) inserts
nothing new. The notifier role `factory5g_notify` reads alarms, devices and the
configuration and works the outbox and deliveries; the API role configures channels,
routes and policies and enqueues test notices (an outbox item and its one delivery).

Revision ID: 0008_notifications
Revises: 0007_optional_position
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008_notifications"
down_revision = "0007_optional_position"
branch_labels = None
depends_on = None

_NOTIFY = "factory5g_notify"
_API = "factory5g_api"

_UPGRADE = [
    "DO $$ BEGIN "
    f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{_NOTIFY}') THEN "
    f"CREATE ROLE {_NOTIFY} NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    """
    CREATE TABLE notify_channels (
        id bigserial PRIMARY KEY,
        project_id text,
        name text NOT NULL,
        type text NOT NULL
            CHECK (type IN ('email', 'webhook', 'wecom', 'dingtalk', 'feishu', 'mqtt')),
        config jsonb NOT NULL DEFAULT '{}'::jsonb,
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX uq_notify_channels_name "
    "ON notify_channels (coalesce(project_id, ''), name)",
    "COMMENT ON COLUMN notify_channels.project_id IS 'NULL: usable by every project'",
    "COMMENT ON COLUMN notify_channels.config IS "
    "'Channel settings including secrets; the API never returns the secrets'",
    """
    CREATE TABLE notify_routes (
        id bigserial PRIMARY KEY,
        project_id text,
        name text NOT NULL,
        channel_id bigint NOT NULL REFERENCES notify_channels (id) ON DELETE CASCADE,
        min_severity text CHECK (min_severity IN ('info', 'warning', 'major', 'critical')),
        severities text[],
        rules text[],
        device_kinds text[],
        tags text[],
        transitions text[],
        recipients text[] NOT NULL DEFAULT '{}',
        language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'zh')),
        quiet_start time,
        quiet_end time,
        quiet_tz text NOT NULL DEFAULT 'UTC',
        escalation_only boolean NOT NULL DEFAULT false,
        position integer NOT NULL DEFAULT 0,
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX uq_notify_routes_name ON notify_routes (coalesce(project_id, ''), name)",
    "COMMENT ON COLUMN notify_routes.project_id IS 'NULL: alarms of every project'",
    "COMMENT ON COLUMN notify_routes.escalation_only IS "
    "'Reached only through an escalation policy step, never by matching a transition'",
    """
    CREATE TABLE notify_policies (
        id bigserial PRIMARY KEY,
        project_id text,
        name text NOT NULL,
        min_severity text CHECK (min_severity IN ('info', 'warning', 'major', 'critical')),
        steps jsonb NOT NULL DEFAULT '[]'::jsonb,
        reminder_interval_s integer CHECK (reminder_interval_s > 0),
        reminder_max integer NOT NULL DEFAULT 0 CHECK (reminder_max BETWEEN 0 AND 100),
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX uq_notify_policies_name "
    "ON notify_policies (coalesce(project_id, ''), name)",
    "COMMENT ON COLUMN notify_policies.steps IS "
    '\'[{"after_s": seconds unacknowledged, "route_id": route}] in order\'',
    """
    CREATE TABLE notify_outbox (
        id bigserial PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        kind text NOT NULL,
        alarm_id bigint,
        project_id text NOT NULL,
        event_ts timestamptz NOT NULL,
        seq integer NOT NULL DEFAULT 0,
        route_id bigint,
        payload jsonb NOT NULL DEFAULT '{}'::jsonb,
        routed_at timestamptz
    )
    """,
    "CREATE INDEX ix_notify_outbox_unrouted ON notify_outbox (id) WHERE routed_at IS NULL",
    # An escalation step or a reminder is enqueued at most once per alarm.
    "CREATE UNIQUE INDEX uq_notify_outbox_followup ON notify_outbox (alarm_id, kind, seq) "
    "WHERE kind IN ('escalation', 'reminder')",
    "COMMENT ON COLUMN notify_outbox.kind IS "
    "'opened|escalated|acknowledged|cleared (alarm transitions), escalation|reminder, test'",
    "COMMENT ON COLUMN notify_outbox.route_id IS "
    "'Set for escalation, reminder and test items: that route only; NULL: matching routes'",
    """
    CREATE TABLE notify_deliveries (
        id bigserial PRIMARY KEY,
        outbox_id bigint NOT NULL REFERENCES notify_outbox (id) ON DELETE CASCADE,
        route_id bigint REFERENCES notify_routes (id) ON DELETE SET NULL,
        channel_id bigint,
        channel_type text NOT NULL,
        alarm_id bigint,
        project_id text NOT NULL,
        kind text NOT NULL,
        language text NOT NULL,
        recipients text[] NOT NULL DEFAULT '{}',
        idempotency_key text NOT NULL UNIQUE,
        state text NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'gave_up')),
        attempts integer NOT NULL DEFAULT 0,
        event_ts timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz,
        claimed_by text,
        give_up_at timestamptz NOT NULL,
        last_status text,
        last_answer text,
        sent_at timestamptz
    )
    """,
    "CREATE INDEX ix_notify_deliveries_due ON notify_deliveries (next_attempt_at) "
    "WHERE state IN ('queued', 'sending', 'failed')",
    "CREATE INDEX ix_notify_deliveries_alarm ON notify_deliveries (alarm_id, id)",
    "COMMENT ON COLUMN notify_deliveries.state IS "
    "'queued | sending (claimed until lease_until) | sent | failed (retry at "
    "next_attempt_at) | gave_up'",
    """
    CREATE TABLE notify_attempts (
        id bigserial PRIMARY KEY,
        delivery_id bigint NOT NULL REFERENCES notify_deliveries (id) ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        ok boolean NOT NULL,
        status text NOT NULL,
        answer text NOT NULL DEFAULT '',
        duration_ms double precision NOT NULL
    )
    """,
    "CREATE INDEX ix_notify_attempts_delivery ON notify_attempts (delivery_id, id)",
    # Only what the event row holds: a lookup of the alarm and its device per row doubled
    # the cost of the rules store's bulk statement (1,000 openings: 64 ms without a
    # trigger, 153 ms with the lookup, 104 ms without it); the router completes the
    # snapshot with one query per batch (services/notify/router.py).
    """
    CREATE FUNCTION notify_outbox_from_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    BEGIN
        IF NEW.transition NOT IN ('opened', 'escalated', 'acknowledged', 'cleared') THEN
            RETURN NULL;
        END IF;
        INSERT INTO notify_outbox (kind, alarm_id, project_id, event_ts, payload)
        VALUES (NEW.transition, NEW.alarm_id, NEW.project_id, NEW.ts,
                jsonb_build_object('severity', NEW.severity, 'actor', NEW.actor,
                                   'evidence', NEW.evidence));
        PERFORM pg_notify('factory5g_notify', '');
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER alarm_events_notify AFTER INSERT ON alarm_events "
    "FOR EACH ROW EXECUTE FUNCTION notify_outbox_from_event()",
    "REVOKE ALL ON FUNCTION notify_outbox_from_event() FROM PUBLIC",
    f"GRANT USAGE ON SCHEMA public TO {_NOTIFY}",
    "DO $$ BEGIN "
    f"EXECUTE format('GRANT CONNECT ON DATABASE %I TO {_NOTIFY}', current_database()); "
    "END $$",
    f"GRANT SELECT ON alarms, alarm_events, devices, projects TO {_NOTIFY}",
    f"GRANT SELECT ON notify_channels, notify_routes, notify_policies TO {_NOTIFY}",
    f"GRANT SELECT, INSERT, UPDATE ON notify_outbox, notify_deliveries TO {_NOTIFY}",
    f"GRANT SELECT, INSERT ON notify_attempts TO {_NOTIFY}",
    f"GRANT USAGE, SELECT ON notify_outbox_id_seq, notify_deliveries_id_seq, "
    f"notify_attempts_id_seq TO {_NOTIFY}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON notify_channels, notify_routes, notify_policies "
    f"TO {_API}",
    # "Send test": the API enqueues the test notice and its one delivery itself, so the
    # answer can name the delivery to poll.
    f"GRANT SELECT, INSERT ON notify_outbox, notify_deliveries TO {_API}",
    f"GRANT SELECT ON notify_attempts TO {_API}",
    f"GRANT USAGE, SELECT ON notify_channels_id_seq, notify_routes_id_seq, "
    f"notify_policies_id_seq, notify_outbox_id_seq, notify_deliveries_id_seq TO {_API}",
]

_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS alarm_events_notify ON alarm_events",
    "DROP FUNCTION IF EXISTS notify_outbox_from_event()",
    "DROP TABLE IF EXISTS notify_attempts",
    "DROP TABLE IF EXISTS notify_deliveries",
    "DROP TABLE IF EXISTS notify_outbox",
    "DROP TABLE IF EXISTS notify_policies",
    "DROP TABLE IF EXISTS notify_routes",
    "DROP TABLE IF EXISTS notify_channels",
    # The role is cluster-wide and other databases may use it: only this database's grants
    # are withdrawn.
    "DO $$ BEGIN "
    f"EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {_NOTIFY}', current_database()); "
    "END $$",
    f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {_NOTIFY}",
    f"REVOKE USAGE ON SCHEMA public FROM {_NOTIFY}",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
