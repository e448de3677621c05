# The expected Chinese texts are written with their full-width brackets, as shown to readers.
# ruff: noqa: RUF001
"""Notification e-mails say the alarm in the route's language: an alarm made by the real
rules engine and stored by its store goes through the outbox trigger, the router and the
real notifier to a real SMTP server, once to a Chinese route and once to an English one;
the operator's acknowledgement (whose own evidence is only a note) says it the same way."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from f5gdev.devstack.notify_seed import stored_config
from services.protocols import alarm_lifecycle as lifecycle
from services.protocols.notify.channels.email import EmailConfig
from services.rules import store
from tests.notify_receivers import LOOPBACK, Mail, SmtpReceiver
from tests.notify_support import connect, notifier
from tests.test_api_texts import transitions
from tests.test_ingest_helpers import wait_until
from tests.test_notify import fast_settings


def body(mail: Mail) -> str:
    part = mail.message.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


async def test_email_in_the_routes_language(database_url: str) -> None:
    p = f"tx{uuid.uuid4().hex[:8]}"
    conn = await connect(database_url)
    try:
        with SmtpReceiver("none") as smtp:
            config = EmailConfig(
                host=LOOPBACK,
                port=smtp.port,
                security="none",
                allow_plaintext_smtp=True,  # loopback only
                sender="factory5g@plant-a.example",
                recipients=["oncall@plant-a.example"],
            )
            channel = await conn.fetchval(
                "INSERT INTO notify_channels (project_id, name, type, config) "
                "VALUES ($1, 'mail', 'email', $2::jsonb) RETURNING id",
                p,
                stored_config(config),
            )
            for language in ("zh", "en"):
                await conn.execute(
                    "INSERT INTO notify_routes (project_id, name, channel_id, language, "
                    "recipients) VALUES ($1, $2, $3, $4, $5)",
                    p,
                    f"mail-{language}",
                    channel,
                    language,
                    [f"{language}@plant-a.example"],
                )
            trs = [t for t in transitions(time.time() - 60) if t.device == "cam-1"]
            for t in trs:
                t.project = p
            async with notifier(fast_settings(database_url)):
                await store.apply(conn, trs)

                async def opened() -> bool:
                    return len(smtp.mails) >= 2

                await wait_until(opened, 60)
                alarm = await conn.fetchval("SELECT id FROM alarms WHERE project_id = $1", p)
                await lifecycle.acknowledge(conn, alarm, "op", datetime.now(UTC), "on it")

                async def acknowledged() -> bool:
                    return len(smtp.mails) >= 4

                await wait_until(acknowledged, 60)
        mails = {(m.rcpt_tos[0], str(m.message["Subject"])): m for m in smtp.mails}
        assert len(mails) == 4, sorted(mails)
        zh = mails[("zh@plant-a.example", "【重要】告警触发：defect_rate · cam-1")]
        en = mails[("en@plant-a.example", "[Major] Alarm opened: defect_rate on cam-1")]
        zh_ack = mails[("zh@plant-a.example", "【重要】告警已确认：defect_rate · cam-1")]
        en_ack = mails[("en@plant-a.example", "[Major] Alarm acknowledged: defect_rate on cam-1")]
        for mail in (zh, zh_ack):
            text = body(mail)
            assert "信息：不良率 20 %（≥ 10 %）" in text, text
            assert "规则：喷涂线划伤率 (defect_rate)" in text, text
        assert "数值：20 %" in body(zh)
        for mail in (en, en_ack):
            text = body(mail)
            assert "Message: defect rate 20 % (≥ 10 %)" in text, text
            assert "Rule: Scratch rate at the paint line (defect_rate)" in text, text
        assert "Value: 20 %" in body(en)
    finally:
        await conn.close()
