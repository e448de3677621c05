"""The local stack's mailbox: where `make run` delivers notifications, so an alarm's e-mail
and webhook call can be seen without any outside service.

- SMTP on 127.0.0.1:1025 (aiosmtpd): every mail is stored in the Maildir `.stack/mail/`
  (one file per mail under `new/`, readable by any mail client or `factory5g dev mailbox`).
- A webhook receiver on 127.0.0.1:8025 (`POST /hook`): verifies the signature and the
  replay window with the channel's own `verify` helper, as a real receiver would, and
  appends one JSON line per call to `.stack/webhooks.jsonl` (verified or not, with why).

The webhook secret is made once and kept in `.stack/webhook-secret` (never in the
repository). `local_channel_configs()` returns the e-mail and webhook channel configs
pointing here; the platform runner starts this as one more child process:
`python -m f5gdev.devstack.receivers`. Both listen on loopback only, which is why plain
SMTP and http:// are allowed here (the channels' named opt-outs).
"""

from __future__ import annotations

import argparse
import http.server
import json
import mailbox
import os
import secrets
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

from f5gdev.devstack.stack import stack_dir
from services.protocols.notify.channels.email import EmailConfig
from services.protocols.notify.channels.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VerificationError,
    WebhookConfig,
    verify,
)

HOST: Final = "127.0.0.1"
SMTP_PORT: Final = 1025
WEBHOOK_PORT: Final = 8025
WEBHOOK_PATH: Final = "/hook"
MAIL_DIR: Final = "mail"
WEBHOOK_LOG: Final = "webhooks.jsonl"
SECRET_FILE: Final = "webhook-secret"
SENDER: Final = "factory5g@factory5g.local"
RECIPIENT: Final = "oncall@factory5g.local"
BODY_MAX: Final = 1 << 20


def webhook_secret(base_dir: Path) -> str:
    """The local webhook secret, made once under the stack directory (mode 0600).

    The receivers and the notifier start together and both ask for it: the secret is
    written whole to a file of its own and then linked into place, which fails if another
    process got there first (whose secret is then read). A reader never sees the file
    created but not yet written, and two makers never keep two secrets."""
    path = base_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    base_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=base_dir, prefix=f".{SECRET_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        os.unlink(tmp)
    return secret


def local_channel_configs(
    base_dir: Path | None = None,
    smtp_port: int = SMTP_PORT,
    webhook_port: int = WEBHOOK_PORT,
) -> dict[str, EmailConfig | WebhookConfig]:
    """Channel configs for the local mailbox: {"email": ..., "webhook": ...}."""
    base = base_dir or stack_dir()
    return {
        "email": EmailConfig(
            host=HOST,
            port=smtp_port,
            security="none",
            allow_plaintext_smtp=True,  # loopback only
            sender=SENDER,
            recipients=[RECIPIENT],
        ),
        "webhook": WebhookConfig(
            url=f"http://{HOST}:{webhook_port}{WEBHOOK_PATH}",
            secret=SecretStr(webhook_secret(base)),
            allow_insecure_http=True,  # loopback only
        ),
    }


class _MaildirHandler:
    def __init__(self, directory: Path) -> None:
        self.box = mailbox.Maildir(directory, create=True)
        self.lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        with self.lock:
            self.box.add(raw)  # written to tmp/, then renamed into new/: never half a mail
        return "250 Message stored in the local mailbox"


class _WebhookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    secret: str
    log_path: Path
    lock: threading.Lock


class _WebhookHandler(http.server.BaseHTTPRequestHandler):
    server: _WebhookServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != WEBHOOK_PATH or not 0 < length <= BODY_MAX:
            self._answer(404 if self.path != WEBHOOK_PATH else 413, {"error": "refused"})
            return
        body = self.rfile.read(length)
        entry: dict[str, Any] = {
            "received_at": time.time(),
            "idempotency_key": self.headers.get(IDEMPOTENCY_HEADER),
        }
        try:
            verify(
                self.server.secret,
                self.headers.get(TIMESTAMP_HEADER),
                self.headers.get(SIGNATURE_HEADER),
                body,
            )
            entry["verified"] = True
            entry["notice"] = json.loads(body)
            status, answer = 200, {"ok": "stored"}
        except (VerificationError, ValueError) as exc:
            entry["verified"] = False
            entry["error"] = str(exc)
            status, answer = 401, {"error": str(exc)}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.server.lock, self.server.log_path.open("a", encoding="utf-8") as log:
            log.write(line)
        self._answer(status, answer)

    def _answer(self, status: int, answer: dict[str, str]) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class LocalReceivers:
    base_dir: Path
    smtp_port: int = SMTP_PORT
    webhook_port: int = WEBHOOK_PORT
    _smtp: Controller | None = field(default=None, init=False)
    _http: _WebhookServer | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> LocalReceivers:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._smtp = Controller(
            _MaildirHandler(self.base_dir / MAIL_DIR), hostname=HOST, port=self.smtp_port
        )
        self._smtp.start()
        server = _WebhookServer((HOST, self.webhook_port), _WebhookHandler)
        server.secret = webhook_secret(self.base_dir)
        server.log_path = self.base_dir / WEBHOOK_LOG
        server.lock = threading.Lock()
        self._http = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None


def start_local_receivers(
    base_dir: Path | None = None,
    smtp_port: int = SMTP_PORT,
    webhook_port: int = WEBHOOK_PORT,
) -> LocalReceivers:
    """Start the local SMTP mailbox and webhook receiver (threads of this process)."""
    return LocalReceivers(base_dir or stack_dir(), smtp_port, webhook_port).start()


@dataclass(frozen=True)
class MailboxEntry:
    at: float
    kind: str  # "mail" or "webhook"
    summary: str


def read_mailbox(base_dir: Path | None = None) -> list[MailboxEntry]:
    """What the local receivers got, oldest first: mails and webhook calls."""
    base = base_dir or stack_dir()
    entries: list[MailboxEntry] = []
    maildir = base / MAIL_DIR
    if maildir.exists():
        box = mailbox.Maildir(maildir, create=False)
        for message in box:
            summary = f"{message['From']} -> {message['To']}: {message['Subject']}"
            entries.append(MailboxEntry(message.get_date(), "mail", summary))
    log = base / WEBHOOK_LOG
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("verified"):
                summary = f"{entry['idempotency_key']}: {entry['notice'].get('title')}"
            else:
                summary = f"REJECTED ({entry.get('error')})"
            entries.append(MailboxEntry(float(entry.get("received_at", 0)), "webhook", summary))
    return sorted(entries, key=lambda e: e.at)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The local stack's mailbox and webhook receiver.")
    parser.add_argument("--base-dir", type=Path, default=None, help="default: the stack dir")
    parser.add_argument("--smtp-port", type=int, default=SMTP_PORT)
    parser.add_argument("--webhook-port", type=int, default=WEBHOOK_PORT)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    receivers = start_local_receivers(args.base_dir, args.smtp_port, args.webhook_port)
    print(
        f"mailbox: smtp://{HOST}:{args.smtp_port} -> {receivers.base_dir / MAIL_DIR}, "
        f"webhook http://{HOST}:{args.webhook_port}{WEBHOOK_PATH} -> "
        f"{receivers.base_dir / WEBHOOK_LOG}",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        receivers.stop()


if __name__ == "__main__":
    main()
