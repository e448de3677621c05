"""Queue a native command in one round trip: `command_queue_native(...)`.

`POST .../devices/{device}/commands` is the route the commands benchmark drives at 500
requests/s. It was a transaction of four round trips (BEGIN; the device, the allow-list and
the device's lock; the rate count and the inserts; COMMIT), and the profile of the API at
that rate put a third of its CPU in them. The rate limit needs two statements: the count
must see every command committed before the device's lock was granted, and a statement's
snapshot is taken when it starts, before it waits for the lock. A VOLATILE function takes a
fresh snapshot for each statement it runs, so one call can lock, count and insert. The
function reads the device and refuses nothing itself: it inserts only when every check
passes and otherwise returns what it read (id null), for the API to answer with the same
refusal, in the same order, as before. A device with a Sparkplug B or VDA 5050 address is
never queued here: its parameters are checked in Python against that address, on the
two-statement path, which takes the same lock (`'cmd/' || project || '/' || device`).

SECURITY INVOKER: the API role keeps exactly its grants on the tables (read devices, allow
list and targets; append commands and events).

Revision ID: 0016_commands_fast
Revises: 0012_oee
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0016_commands_fast"
down_revision = "0012_oee"
branch_labels = None
depends_on = None

_SIGNATURE = (
    "command_queue_native(uuid, text, text, text, jsonb, text, double precision, "
    "double precision, integer, boolean, boolean, text[])"
)

_UPGRADE = [
    """
    CREATE FUNCTION command_queue_native(
        p_id uuid, p_project text, p_device text, p_name text, p_params jsonb,
        p_actor text, p_timeout_s double precision, p_window_s double precision,
        p_per_device integer, p_queue_offline boolean, p_timeout_ok boolean,
        p_birth_kinds text[]
    ) RETURNS TABLE (
        allowed boolean, online boolean, n bigint, oldest timestamptz,
        id uuid, project_id text, device_id text, kind text, name text, protocol text,
        params jsonb, state text, actor text, created_at timestamptz, deadline timestamptz,
        sent_at timestamptz, updated_at timestamptz, finished_at timestamptz,
        message text, result jsonb
    )
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp AS $$
    #variable_conflict use_column
    DECLARE
        dev record;
    BEGIN
        SELECT d.kind, d.online, t.protocol,
               EXISTS (SELECT 1 FROM command_allow a
                       WHERE a.project_id = d.project_id AND a.kind = d.kind
                         AND a.name = p_name) AS allowed
        INTO dev
        FROM devices d
        LEFT JOIN command_targets t
               ON t.project_id = d.project_id AND t.device_id = d.device_id
        WHERE d.project_id = p_project AND d.device_id = p_device;
        IF NOT FOUND THEN
            RETURN;  -- no row: no such device
        END IF;
        allowed := dev.allowed;
        online := dev.online;
        kind := dev.kind;
        protocol := coalesce(dev.protocol, 'native');
        IF dev.protocol IS NOT NULL OR dev.kind = ANY (p_birth_kinds) OR NOT dev.allowed
           OR NOT p_timeout_ok OR NOT (dev.online OR p_queue_offline) THEN
            RETURN NEXT;  -- id null, nothing queued: the caller says why
            RETURN;
        END IF;
        -- Held until the caller's transaction commits, after the inserts below.
        PERFORM pg_advisory_xact_lock(hashtextextended('cmd/' || p_project || '/' || p_device, 0));
        -- A new snapshot, taken after the lock was granted.
        SELECT count(*), min(c.created_at) INTO n, oldest
        FROM commands c
        WHERE c.project_id = p_project AND c.device_id = p_device
          AND c.created_at > now() - make_interval(secs => p_window_s);
        IF n >= p_per_device THEN
            RETURN NEXT;  -- id null: rate limited
            RETURN;
        END IF;
        INSERT INTO commands AS c (id, project_id, device_id, kind, name, protocol, params,
                                   state, actor, deadline)
        VALUES (p_id, p_project, p_device, dev.kind, p_name, 'native', p_params, 'queued',
                p_actor, now() + make_interval(secs => p_timeout_s))
        RETURNING c.id, c.project_id, c.device_id, c.kind, c.name, c.protocol, c.params,
                  c.state, c.actor, c.created_at, c.deadline, c.sent_at, c.updated_at,
                  c.finished_at, c.message, c.result
        INTO id, project_id, device_id, kind, name, protocol, params, state, actor,
             created_at, deadline, sent_at, updated_at, finished_at, message, result;
        INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor,
                                    detail)
        VALUES (p_id, p_project, p_device, created_at, 'queued', p_actor,
                jsonb_build_object('name', p_name, 'params', p_params));
        RETURN NEXT;
    END $$
    """,
    # Functions are executable by PUBLIC unless revoked.
    f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC",
    f"GRANT EXECUTE ON FUNCTION {_SIGNATURE} TO factory5g_api",
]

_DOWNGRADE = [f"DROP FUNCTION IF EXISTS {_SIGNATURE}"]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
