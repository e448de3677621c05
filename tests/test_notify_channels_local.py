"""The local mailbox of `make run`: the SMTP server storing mails in `.stack/mail/` and the
webhook receiver appending verified calls to `.stack/webhooks.jsonl`, fed by the real
channels through `local_channel_configs()`, in-process and as the child process the
platform runner starts."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from f5gdev.devstack import receivers as local
from f5gdev.devstack.servers import free_port
from services.cli import app
from services.protocols.notify.channels import CHANNELS
from services.protocols.notify.http import Client
from services.protocols.notify.targets import Targets
from tests.notify_receivers import make_notice, wait_until

# The receivers listen on loopback: the opt-out the local stack also sets.
LOOPBACK_TARGETS = Targets(["127.0.0.0/8"])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((local.HOST, port)) == 0


async def _deliver(base: Path, smtp_port: int, webhook_port: int, key: str) -> None:
    configs = local.local_channel_configs(base, smtp_port, webhook_port)
    notice = make_notice(idempotency_key=key)
    async with Client(targets=LOOPBACK_TARGETS) as client:
        for name, config in configs.items():
            outcome = await CHANNELS[name].send(config, notice, "zh", client)
            assert outcome.ok, (name, outcome)


async def test_local_receivers_store_mail_and_verified_webhook_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp_port, webhook_port = free_port(), free_port()
    receivers = local.start_local_receivers(tmp_path, smtp_port, webhook_port)
    try:
        await _deliver(tmp_path, smtp_port, webhook_port, "alarm-1:opened:local")
        # A call signed with another secret is logged as rejected and answered 401.
        async with Client(targets=LOOPBACK_TARGETS) as client:
            forged = await client.post(
                f"http://{local.HOST}:{webhook_port}{local.WEBHOOK_PATH}",
                b'{"x":1}',
                {"X-Factory5g-Timestamp": str(int(time.time())),
                 "X-Factory5g-Signature": "sha256=" + "0" * 64},
                10.0,
            )  # fmt: skip
        assert forged.status == 401
    finally:
        receivers.stop()

    mails = list(mailbox.Maildir(tmp_path / local.MAIL_DIR, create=False))
    assert len(mails) == 1
    assert mails[0]["X-Factory5g-Idempotency-Key"] == "alarm-1:opened:local"
    assert mails[0]["To"] == local.RECIPIENT
    lines = [json.loads(x) for x in (tmp_path / local.WEBHOOK_LOG).read_text().splitlines()]
    assert [x["verified"] for x in lines] == [True, False]
    assert lines[0]["idempotency_key"] == "alarm-1:opened:local"
    assert lines[0]["notice"]["title"].startswith("【紧急】")
    assert "signature" in lines[1]["error"]
    assert (tmp_path / local.SECRET_FILE).stat().st_mode & 0o077 == 0

    monkeypatch.setenv("F5G_STACK_DIR", str(tmp_path))
    out = CliRunner().invoke(app, ["dev", "mailbox"])
    assert out.exit_code == 0, out.output
    assert "mail" in out.output
    assert "alarm-1:opened:local" in out.output
    assert "REJECTED" in out.output


def test_local_receivers_run_as_a_child_process(tmp_path: Path) -> None:
    smtp_port, webhook_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "f5gdev.devstack.receivers", "--base-dir", str(tmp_path),
         "--smtp-port", str(smtp_port), "--webhook-port", str(webhook_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(smtp_port) and _listening(webhook_port), 60, "receivers")
        asyncio.run(_deliver(tmp_path, smtp_port, webhook_port, "alarm-2:opened:child"))
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert "mailbox: smtp://" in output
    assert len(list(mailbox.Maildir(tmp_path / local.MAIL_DIR, create=False))) == 1
    assert len((tmp_path / local.WEBHOOK_LOG).read_text().splitlines()) == 1


def _secret_in_child(base: str, start: float) -> str:
    time.sleep(max(0.0, start - time.time()))
    return local.webhook_secret(Path(base))


def test_the_webhook_secret_is_made_once_when_processes_race_for_it(tmp_path: Path) -> None:
    """`make run` starts the receivers and the notifier together, and both ask for the
    secret: each must get the one the file keeps (a reader used to find the file created
    but still empty, and two makers each kept their own)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(8) as pool:
        for round_ in range(20):
            base = tmp_path / f"r{round_}"
            start = time.time() + 0.3
            got = list(pool.map(_secret_in_child, [str(base)] * 8, [start] * 8))
            kept = (base / local.SECRET_FILE).read_text().strip()
            assert len(kept) >= 16, kept
            assert got == [kept] * 8, (round_, got, kept)
