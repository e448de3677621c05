"""E-mail over SMTP: STARTTLS (default) or implicit TLS, optional AUTH, a plain-text part
and an HTML alternative, one message to all recipients.

`Message-ID` is derived from the idempotency key, so every retry of a delivery carries the
same id and mail systems and clients that de-duplicate on it show one message; the key is
also in `X-Factory5g-Idempotency-Key` for filters and ticketing systems.

The standard library's smtplib runs in a worker thread (`asyncio.to_thread`): a mail is a
few round trips, and no extra runtime dependency is needed. Classification (RFC 5321 4.2.1):
a 5xx reply on MAIL/RCPT/DATA or AUTH is permanent, not retried; 4xx replies, refused or
dropped connections and timeouts are retried. A server without STARTTLS, or one whose
certificate does not verify, is a configuration error: not retried, never sent in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator

from services.protocols.notify.channels.base import ChannelConfig, Publish, short
from services.protocols.notify.channels.webhook import header_key
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome
from services.protocols.notify.templates import render

IDEMPOTENCY_HEADER: Final = "X-Factory5g-Idempotency-Key"
_ADDRESS = re.compile(r"[^@\s<>\"',;()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}")


class EmailConfig(ChannelConfig):
    host: str = Field(min_length=1, description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for TLS.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS upgrade, implicit TLS, or none (needs the opt-out)."
    )
    allow_plaintext_smtp: bool = Field(
        False,
        description="Allow `security: none`: mail, and any password, cross the network in "
        "clear. Off by default; the local mailbox and tests set it on loopback.",
    )
    ca_file: Path | None = Field(
        None, description="CA bundle for the server's certificate (default: system CAs)."
    )
    username: str | None = Field(None, description="AUTH user name; no AUTH when unset.")
    password: SecretStr | None = Field(None, description="AUTH password.")
    sender: str = Field(description="The From address.")
    recipients: list[str] = Field(min_length=1, max_length=100, description="To addresses.")
    timeout_s: float = Field(20.0, gt=0, le=300, description="Timeout of each SMTP step.")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @model_validator(mode="after")
    def _secure(self) -> EmailConfig:
        if self.security == "none" and not self.allow_plaintext_smtp:
            raise ValueError(
                "security: none sends mail and the password in clear; use starttls or tls, "
                "or set allow_plaintext_smtp: true (loopback and tests only)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not a plain e-mail address: {value!r}")
    return value


def message_id(key: str, sender: str) -> str:
    """The same `Message-ID` for every attempt of one delivery."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<f5g.{digest}@{sender.rsplit('@', 1)[1]}>"


def build(
    config: EmailConfig, notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None
) -> EmailMessage:
    rendered = render(notice, language, tz)
    mail = EmailMessage()
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.recipients)
    mail["Subject"] = rendered.title
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(notice.idempotency_key, config.sender)
    mail[IDEMPOTENCY_HEADER] = header_key(notice.idempotency_key)
    mail["Content-Language"] = "zh-CN" if language == "zh" else "en"
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to alarms
    mail.set_content(rendered.text)
    rows = "".join(
        f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rendered.fields
    )
    link = (
        f'<p><a href="{html.escape(rendered.link)}">{html.escape(rendered.link_label)}</a></p>'
        if rendered.link
        else ""
    )
    lang = "zh-CN" if language == "zh" else "en"
    mail.add_alternative(
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"></head><body>'
        f"<h3>{html.escape(rendered.title)}</h3><table>{rows}</table>{link}</body></html>",
        subtype="html",
    )
    return mail


class _UnsupportedError(Exception):
    """The server lacks an extension the configuration needs: retrying will not help."""

    def __init__(self, status: str, answer: str) -> None:
        super().__init__(answer)
        self.status = status


def _deliver(config: EmailConfig, mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    smtp: smtplib.SMTP
    if config.security == "tls":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s,
                                context=context)  # fmt: skip
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
    with smtp:
        smtp.ehlo()
        if config.security == "starttls":
            if not smtp.has_extn("starttls"):
                # Never fall back to clear text: that is what an attacker in between wants.
                raise _UnsupportedError("starttls unsupported", "the server offers no STARTTLS")
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username is not None and config.password is not None:
            if not smtp.has_extn("auth"):
                raise _UnsupportedError("auth unsupported", "the server offers no AUTH")
            smtp.login(config.username, config.password.get_secret_value())
        return smtp.send_message(mail)


def _reply(code: int, text: bytes | str) -> Outcome:
    return Outcome(False, 400 <= code < 500, str(code), short(text))


async def send(
    config: EmailConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client | None = None,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    mail = build(config, notice, language, tz)
    try:
        refused = await asyncio.to_thread(_deliver, config, mail)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        answer = "; ".join(f"{rcpt}: {code} {msg.decode(errors='replace')}"
                           for rcpt, (code, msg) in exc.recipients.items())  # fmt: skip
        # Retry when at least one refusal was temporary; all permanent = give up.
        return Outcome(False, any(400 <= c < 500 for c in codes), str(max(codes)), short(answer))
    except _UnsupportedError as exc:
        return Outcome(False, False, exc.status, short(str(exc)))
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(False, False, "unsupported", short(str(exc)))
    except smtplib.SMTPResponseException as exc:  # sender refused, DATA, AUTH, HELO
        return _reply(exc.smtp_code, exc.smtp_error)
    except ssl.SSLCertVerificationError as exc:
        return Outcome(False, False, "tls verify failed", short(str(exc)))
    except smtplib.SMTPServerDisconnected as exc:
        return Outcome(False, True, "disconnected", short(str(exc)))
    except TimeoutError as exc:
        return Outcome(False, True, "timeout", short(str(exc)))
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(False, True, "connect error", short(f"{type(exc).__name__}: {exc}"))
    if refused:
        # Accepted for some recipients: a retry would duplicate their copy, so it is
        # delivered, with the refusals in the answer for the history.
        answer = "; ".join(f"refused {rcpt}: {code}" for rcpt, (code, _) in refused.items())
        return Outcome(True, False, "250 partial", short(answer))
    return Outcome(True, False, "250", f"accepted for {len(config.recipients)} recipient(s)")
