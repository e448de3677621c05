"""Notification set-up of `make run`: each simulated project sends its major and critical
alarms to the local mailbox (e-mail and webhook), and escalates them when nobody acts.

Why seeded: without a channel and a route the notifier has nothing to do, and the demo's
AGV e-stop (critical in services/rules/default_rules.yaml) would show no notification. Per
project, idempotently (existing rows of these names are updated, others left alone):
- channels `local-mail` and `local-webhook`, from `receivers.local_channel_configs()`;
- routes `local-mail` and `local-webhook`: every transition of severity >= major;
- route `local-oncall` (escalation only) to the mail channel, and policy `local-escalation`:
  an alarm of severity >= major still open and unacknowledged after `ESCALATE_AFTER_S` is
  escalated to it, then reminded every `REMINDER_EVERY_S` up to `REMINDERS` times;
  acknowledging or clearing the alarm stops both.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import asyncpg
import orjson
from pydantic import SecretStr

from f5gdev.devstack.receivers import SMTP_PORT, WEBHOOK_PORT, local_channel_configs
from services.core.db import asyncpg_dsn

MIN_SEVERITY: Final = "major"
ESCALATE_AFTER_S: Final = 120
REMINDER_EVERY_S: Final = 300
REMINDERS: Final = 3
MAIL: Final = "local-mail"
WEBHOOK: Final = "local-webhook"
ONCALL: Final = "local-oncall"
POLICY: Final = "local-escalation"

_CHANNEL = """
INSERT INTO notify_channels (project_id, name, type, config)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT ((coalesce(project_id, '')), name)
DO UPDATE SET type = EXCLUDED.type, config = EXCLUDED.config, enabled = true, updated_at = now()
RETURNING id
"""
_ROUTE = """
INSERT INTO notify_routes (project_id, name, channel_id, min_severity, escalation_only)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT ((coalesce(project_id, '')), name)
DO UPDATE SET channel_id = EXCLUDED.channel_id, min_severity = EXCLUDED.min_severity,
              escalation_only = EXCLUDED.escalation_only, enabled = true, updated_at = now()
RETURNING id
"""
_POLICY = """
INSERT INTO notify_policies (project_id, name, min_severity, steps, reminder_interval_s,
                             reminder_max)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
ON CONFLICT ((coalesce(project_id, '')), name)
DO UPDATE SET min_severity = EXCLUDED.min_severity, steps = EXCLUDED.steps,
              reminder_interval_s = EXCLUDED.reminder_interval_s,
              reminder_max = EXCLUDED.reminder_max, enabled = true, updated_at = now()
RETURNING id
"""


def stored_config(config: Any) -> str:
    """A channel model as the JSON the notifier reads back (secrets in clear: the table's
    comment says so, and the API never returns them)."""
    data = config.model_dump(mode="python", exclude_none=True)
    plain = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in data.items()}
    return orjson.dumps(plain, default=str).decode()


async def seed_local_notifications(
    database_url: str,
    projects: Iterable[str],
    base_dir: Path | None = None,
    smtp_port: int = SMTP_PORT,
    webhook_port: int = WEBHOOK_PORT,
    escalate_after_s: int = ESCALATE_AFTER_S,
    reminder_every_s: int = REMINDER_EVERY_S,
) -> dict[str, dict[str, int]]:
    """Create or update the local channels, routes and policy of each project; returns
    {project: {"mail_route": id, "webhook_route": id, "oncall_route": id, "policy": id}}."""
    configs = local_channel_configs(base_dir, smtp_port, webhook_port)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    out: dict[str, dict[str, int]] = {}
    try:
        for project in projects:
            async with conn.transaction():
                mail = await conn.fetchval(_CHANNEL, project, MAIL, "email",
                                           stored_config(configs["email"]))  # fmt: skip
                hook = await conn.fetchval(_CHANNEL, project, WEBHOOK, "webhook",
                                           stored_config(configs["webhook"]))  # fmt: skip
                ids = {
                    "mail_route": await conn.fetchval(
                        _ROUTE, project, MAIL, mail, MIN_SEVERITY, False
                    ),
                    "webhook_route": await conn.fetchval(
                        _ROUTE, project, WEBHOOK, hook, MIN_SEVERITY, False
                    ),
                    "oncall_route": await conn.fetchval(
                        _ROUTE, project, ONCALL, mail, MIN_SEVERITY, True
                    ),
                }
                steps = [{"after_s": escalate_after_s, "route_id": ids["oncall_route"]}]
                ids["policy"] = await conn.fetchval(
                    _POLICY, project, POLICY, MIN_SEVERITY, orjson.dumps(steps).decode(),
                    reminder_every_s, REMINDERS,
                )  # fmt: skip
                out[project] = ids
    finally:
        await conn.close()
    return out
