"""The e-mail channel against a real SMTP server (aiosmtpd) on loopback: STARTTLS and
implicit TLS with a certificate of the project's development CA, AUTH, both languages, the
idempotent Message-ID, and the retry classification of every refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from f5gdev.devstack.servers import free_port
from services.protocols.notify.channels import CHANNELS
from services.protocols.notify.channels import email as em
from services.security.certs import DevCA
from tests.notify_receivers import LOOPBACK, SmtpReceiver, make_notice

USER, PASSWORD = "alarms", "mail-pass-0123"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("smtp-certs")
    DevCA(directory).ensure()
    return directory


@pytest.fixture
def starttls(certs: Path) -> Iterator[SmtpReceiver]:
    with SmtpReceiver("starttls", certs, auth=(USER, PASSWORD)) as server:
        yield server


def config(server: SmtpReceiver, certs: Path | None, **kw: Any) -> em.EmailConfig:
    data: dict[str, Any] = {
        "host": LOOPBACK,
        "port": server.port,
        "security": server.security,
        "ca_file": str(certs / "ca.crt") if certs else None,
        "sender": "factory5g@plant-a.example",
        "recipients": ["oncall@plant-a.example", "lead@plant-a.example"],
        "timeout_s": 30,
    }
    if server.security == "none":
        data["allow_plaintext_smtp"] = True
    data.update(kw)
    return em.EmailConfig.model_validate(data)


async def test_starttls_auth_both_languages(starttls: SmtpReceiver, certs: Path) -> None:
    cfg = config(starttls, certs, username=USER, password=PASSWORD)
    notice = make_notice(value=87.5, unit="°C")
    for language in ("en", "zh"):
        outcome = await CHANNELS["email"].send(cfg, notice, language, None)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.status) == (True, "250"), outcome
    en, zh = starttls.mails
    for mail in (en, zh):
        assert mail.tls
        assert mail.auth_user == USER
        assert sorted(mail.rcpt_tos) == ["lead@plant-a.example", "oncall@plant-a.example"]
        assert mail.mail_from == "factory5g@plant-a.example"
        assert mail.message["X-Factory5g-Idempotency-Key"] == notice.idempotency_key
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert mail.message.get_content_type() == "multipart/alternative"
    assert en.message["Subject"] == "[Critical] Alarm opened: agv_estop on agv-07"
    assert zh.message["Subject"] == "【紧急】告警触发：agv_estop · agv-07"  # noqa: RUF001
    # Every attempt of a delivery carries the same Message-ID, derived from the key.
    assert en.message["Message-ID"] == zh.message["Message-ID"]
    assert en.message["Message-ID"] == em.message_id(notice.idempotency_key, cfg.sender)
    other = em.message_id("another-key", cfg.sender)
    assert other != en.message["Message-ID"]
    text = en.message.get_body(("plain",))
    html = zh.message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "87.5 °C" in text.get_content()
    assert "Plant A Assembly" in text.get_content()
    assert "紧急" in html.get_content()
    assert 'href="https://factory.example/alarms/42"' in html.get_content()


async def test_html_part_escapes_untrusted_fields(starttls: SmtpReceiver, certs: Path) -> None:
    cfg = config(starttls, certs, username=USER, password=PASSWORD)
    notice = make_notice(device='<img src=x onerror="alert(1)">', message="a\r\nBcc: x@evil")
    assert (await em.send(cfg, notice, "en")).ok
    (mail,) = starttls.mails
    html = mail.message.get_body(("html",))
    assert html is not None
    assert "<img" not in html.get_content()
    assert mail.message["Bcc"] is None
    assert "\n" not in str(mail.message["Subject"])


async def test_implicit_tls(certs: Path) -> None:
    with SmtpReceiver("tls", certs, auth=(USER, PASSWORD)) as server:
        cfg = config(server, certs, username=USER, password=PASSWORD)
        outcome = await em.send(cfg, make_notice(), "zh")
        assert (outcome.ok, outcome.status) == (True, "250"), outcome
        (mail,) = server.mails
        assert mail.tls


async def test_plaintext_only_with_the_opt_out() -> None:
    with SmtpReceiver("none") as server:
        outcome = await em.send(config(server, None), make_notice(), "en")
        assert outcome.ok, outcome
        (mail,) = server.mails
        assert not mail.tls
        assert mail.auth_user is None


async def test_server_without_starttls_is_a_configuration_error(certs: Path) -> None:
    with SmtpReceiver("none") as server:
        cfg = config(server, certs, security="starttls", allow_plaintext_smtp=False)
        outcome = await em.send(cfg, make_notice(), "en")
        assert (outcome.ok, outcome.retryable, outcome.status) == (
            False,
            False,
            "starttls unsupported",
        )
        assert server.mails == []


async def test_untrusted_certificate_is_refused(starttls: SmtpReceiver) -> None:
    cfg = config(starttls, None, username=USER, password=PASSWORD)  # system CAs only
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "tls verify failed")
    assert starttls.mails == []


async def test_wrong_password_is_permanent(starttls: SmtpReceiver, certs: Path) -> None:
    cfg = config(starttls, certs, username=USER, password="wrong-password")
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "535")
    assert starttls.mails == []


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 5.1.1 no such user", False), ("450 4.2.1 mailbox busy, try later", True)],
)
async def test_all_recipients_refused(
    starttls: SmtpReceiver, certs: Path, reply: str, retryable: bool
) -> None:
    for address in ("oncall@plant-a.example", "lead@plant-a.example"):
        starttls.refuse_recipient(address, reply)
    cfg = config(starttls, certs, username=USER, password=PASSWORD)
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, retryable, reply[:3])
    assert "oncall@plant-a.example" in outcome.answer
    assert starttls.mails == []


async def test_one_recipient_refused_is_delivered_to_the_others(
    starttls: SmtpReceiver, certs: Path
) -> None:
    starttls.refuse_recipient("lead@plant-a.example", "550 5.1.1 no such user")
    cfg = config(starttls, certs, username=USER, password=PASSWORD)
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (True, False, "250 partial")
    assert "lead@plant-a.example" in outcome.answer
    (mail,) = starttls.mails
    assert mail.rcpt_tos == ["oncall@plant-a.example"]


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("451 4.3.0 local error, try later", True), ("554 5.6.0 message refused", False)],
)
async def test_data_refused(
    starttls: SmtpReceiver, certs: Path, reply: str, retryable: bool
) -> None:
    starttls.refuse_next_data(reply)
    cfg = config(starttls, certs, username=USER, password=PASSWORD)
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, retryable, reply[:3])
    # the retry of a temporary refusal goes through
    retry = await em.send(cfg, make_notice(), "en")
    assert retry.ok
    assert len(starttls.mails) == 1


async def test_server_down_is_retryable() -> None:
    port = free_port()  # nothing listens there
    cfg = em.EmailConfig(
        host=LOOPBACK,
        port=port,
        security="none",
        allow_plaintext_smtp=True,
        sender="a@b.example",
        recipients=["c@d.example"],
    )
    outcome = await em.send(cfg, make_notice(), "en")
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, True, "connect error")


def test_odd_idempotency_keys_make_one_safe_header() -> None:
    cfg = em.EmailConfig(host="smtp.example", sender="a@b.example", recipients=["c@d.example"])
    mail = em.build(cfg, make_notice(idempotency_key="告警-7\r\nBcc: x@evil.example"), "en")
    assert mail["Bcc"] is None
    assert mail[em.IDEMPOTENCY_HEADER] == "%E5%91%8A%E8%AD%A6-7%0D%0ABcc: x@evil.example"
    assert b"\r\nBcc:" not in mail.as_bytes()
