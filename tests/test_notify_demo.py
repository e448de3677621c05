"""The `make run` notification demo without the whole `factory5g up`: the local mailbox
(real SMTP and webhook receivers), the seeded channels, routes and policy, the real rules
service with the default rules on the real broker, and the notifier.

An AGV e-stop must be in the mailbox (a mail and a verified webhook line) within 2 s of its
alarm transition, escalate while nobody acknowledges it, and go quiet once acknowledged.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from f5gdev.devstack import receivers as local
from f5gdev.devstack.notify_seed import seed_local_notifications, stored_config
from f5gdev.devstack.servers import Mosquitto, free_port
from services.protocols import alarm_lifecycle as lifecycle
from tests.notify_receivers import DingTalkReceiver
from tests.notify_support import connect, notifier, open_alarm
from tests.test_ingest_helpers import REPO, wait_until
from tests.test_notify import fast_settings
from tests.test_rules_scenarios import agv
from tests.test_rules_service import publish, start_service

DEFAULT_RULES = (REPO / "services" / "rules" / "default_rules.yaml").read_text()
WITHIN_S = 2.0


def mails(base: Path) -> list[tuple[float, str]]:
    """(stored at, subject) of each mail in the local Maildir."""
    out = []
    for path in (base / local.MAIL_DIR / "new").glob("*"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append((path.stat().st_mtime, str(message["Subject"])))
    return sorted(out)


def webhook_lines(base: Path) -> list[dict[str, Any]]:
    log = base / local.WEBHOOK_LOG
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


async def test_an_agv_estop_reaches_the_local_mailbox_escalates_and_stops_on_ack(
    database_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    p = f"demo{uuid.uuid4().hex[:8]}"
    smtp_port, webhook_port = free_port(), free_port()
    receivers = local.start_local_receivers(tmp_path, smtp_port, webhook_port)
    conn = await connect(database_url)
    rules = await start_service(
        database_url, broker.port, tmp_path, f"demo-{p}", rules=DEFAULT_RULES
    )
    try:
        seeded = await seed_local_notifications(
            database_url, [p], tmp_path, smtp_port, webhook_port,
            escalate_after_s=4, reminder_every_s=4,
        )  # fmt: skip
        # Idempotent: seeding again (every `make run`) changes nothing.
        assert await seed_local_notifications(
            database_url, [p], tmp_path, smtp_port, webhook_port,
            escalate_after_s=4, reminder_every_s=4,
        ) == seeded  # fmt: skip
        assert await conn.fetchval(
            "SELECT count(*) FROM notify_channels WHERE project_id = $1", p
        ) == 2  # fmt: skip
        async with notifier(fast_settings(database_url)):
            topic = f"f5g/v1/{p}/agv/agv-7/agv"
            t0 = time.time()
            await publish(
                broker.port,
                [
                    (topic, orjson.dumps(agv(t0 - 1, 1))),
                    (topic, orjson.dumps(agv(t0, 2, state="estop", speed=0.0))),
                ],
            )

            async def delivered() -> bool:
                return bool(mails(tmp_path)) and bool(webhook_lines(tmp_path))

            await wait_until(delivered, 30)
            row = await conn.fetchrow(
                "SELECT a.id, extract(epoch FROM o.created_at) AS at FROM notify_outbox o "
                "JOIN alarms a ON a.id = o.alarm_id "
                "WHERE o.project_id = $1 AND o.kind = 'opened'",
                p,
            )
            transition_at = float(row["at"])
            mail_at, subject = mails(tmp_path)[0]
            hook = webhook_lines(tmp_path)[0]
            assert "Alarm opened" in subject, subject
            assert hook["verified"], hook
            assert hook["notice"]["kind"] == "opened"
            assert hook["notice"]["alarm"]["device"] == "agv-7"
            assert hook["notice"]["alarm"]["severity"] == "critical"
            mail_s, hook_s = mail_at - transition_at, hook["received_at"] - transition_at
            print(f"mail {mail_s:.3f} s, webhook {hook_s:.3f} s after the transition")
            assert mail_s <= WITHIN_S
            assert hook_s <= WITHIN_S

            async def escalated() -> bool:
                return any("Escalation" in s for _, s in mails(tmp_path))

            await wait_until(escalated, 30)
            await lifecycle.acknowledge(conn, row["id"], "op", datetime.now(UTC))
            acked_at = time.time()

            async def acknowledged() -> bool:
                return any(h["notice"]["kind"] == "acknowledged" for h in webhook_lines(tmp_path))

            await wait_until(acknowledged, 30)
            # Another escalation interval and reminder interval pass: nothing more is sent.
            await wait_until(lambda: _after(acked_at + 6), 30)
            late = [
                s for at, s in mails(tmp_path)
                if at > acked_at + 1 and "Alarm acknowledged" not in s
            ] + [
                h["notice"]["kind"] for h in webhook_lines(tmp_path)
                if h["received_at"] > acked_at + 1 and h["notice"]["kind"] != "acknowledged"
            ]  # fmt: skip
            assert late == []
        assert all(h["verified"] for h in webhook_lines(tmp_path))
    finally:
        await rules.close()
        await conn.close()
        receivers.stop()


async def _after(moment: float) -> bool:
    return time.time() >= moment


async def test_route_recipients_and_time_zone_reach_each_channel_type(
    database_url: str, tmp_path: Path
) -> None:
    """A route's recipients replace the channel's addressees in the field each type has
    (e-mail `recipients`, DingTalk `at_mobiles`), and its zone dates the texts."""
    p = f"rcpt{uuid.uuid4().hex[:8]}"
    smtp_port, webhook_port = free_port(), free_port()
    receivers = local.start_local_receivers(tmp_path, smtp_port, webhook_port)
    conn = await connect(database_url)
    try:
        with DingTalkReceiver("ding-token") as ding:
            mail_config = local.local_channel_configs(tmp_path, smtp_port, webhook_port)["email"]
            ding_config = {"access_token": "ding-token", "base_url": ding.url,
                           "allow_insecure_http": True, "at_mobiles": ["13900000000"]}  # fmt: skip
            for name, kind, config in (
                ("mail", "email", stored_config(mail_config)),
                ("ding", "dingtalk", orjson.dumps(ding_config).decode()),
            ):
                channel = await conn.fetchval(
                    "INSERT INTO notify_channels (project_id, name, type, config) "
                    "VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
                    p, name, kind, config,
                )  # fmt: skip
                recipients = (
                    ["a@factory5g.local", "b@factory5g.local"] if kind == "email"
                    else ["13800001111"]
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO notify_routes (project_id, name, channel_id, recipients, "
                    "quiet_tz) VALUES ($1, $2, $3, $4, 'Asia/Shanghai')",
                    p, name, channel, recipients,
                )  # fmt: skip
            async with notifier(fast_settings(database_url)):
                await open_alarm(conn, p, "agv-3")

                async def both() -> bool:
                    return bool(ding.requests) and bool(mails(tmp_path))

                await wait_until(both, 30)
            assert ding.problems == []
            sent = ding.requests[0].json()
            assert sent["at"]["atMobiles"] == ["13800001111"]
            assert "@13800001111" in sent["markdown"]["text"]
            assert "Asia/Shanghai (UTC+08:00)" in sent["markdown"]["text"]
        path = next((tmp_path / local.MAIL_DIR / "new").glob("*"))
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert str(mail["To"]) == "a@factory5g.local, b@factory5g.local"
        assert "Asia/Shanghai (UTC+08:00)" in mail.get_body(("plain",)).get_content()
    finally:
        await conn.close()
        receivers.stop()
