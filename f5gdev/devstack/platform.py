"""`factory5g up`: the whole platform on this machine, each service in its own process.

Services run as separate processes, as they do in production, so the demo exercises the
same MQTT and database paths; Ctrl-C (or SIGTERM) stops them in reverse order and gives
ingest time to flush and acknowledge.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from f5gdev.devstack.demo_commands import seed_command_allowlist
from f5gdev.devstack.demo_registry import seed_demo_registry
from f5gdev.devstack.notify_seed import seed_local_notifications
from f5gdev.devstack.receivers import HOST, MAIL_DIR, SMTP_PORT, WEBHOOK_LOG, WEBHOOK_PORT
from f5gdev.devstack.stack import LocalStack, use_local_passfile
from f5gdev.devstack.stack_accounts import service_env
from services.core import db
from services.core.settings import Settings
from services.simulator.factory import project_infos

SERVICES = (
    ("ingest", "services.ingest.service"),
    ("rules", "services.rules.service"),
    ("notify", "services.notify.service"),
    ("commands", "services.commands.service"),
    ("api", "services.api.server"),
    ("simulate", "services.simulator.factory"),
)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def start_service(
    name: str, log_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", name],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


ADMIN_KEY_FILE = "admin-api-key"


def local_admin_key(base_dir: Path) -> str:
    """The local stack's admin API key: made once, kept under the stack directory (never in
    the repository), and handed to the API as its bootstrap key so the dashboard can be
    opened straight away."""
    path = base_dir / ADMIN_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    token = f"f5g_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def run_platform(settings: Settings, with_simulator: bool = True) -> None:
    stack = LocalStack.default()
    print("starting the local stack (first run installs and builds what is missing)...")
    stack.up()
    use_local_passfile()  # the owner's password, for a database URL without one
    db.migrate(settings.database.url)  # as the schema owner; services get their own roles
    stack.ensure_db_users()
    if with_simulator:
        # The simulated fleet's commands, so the dashboard has something to send.
        added = seed_command_allowlist(settings)
        print(f"command allow-list for the simulated fleet: {added} name(s) added")
        pairs = seed_demo_registry(settings)
        print(f"simulated plant registered: hall 1 floor maps, {pairs} module-station pairs")
    log_dir = stack.base_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    admin_key = local_admin_key(stack.base_dir)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    # The local mailbox first (stopped last): the notifier delivers there from the start.
    with (log_dir / "mailbox.log").open("ab") as log:
        mailbox = subprocess.Popen(
            [sys.executable, "-m", "f5gdev.devstack.receivers", "--base-dir", str(stack.base_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    procs.append(("mailbox", mailbox))
    projects = [p.id for p in project_infos(settings.simulator.projects)]
    asyncio.run(seed_local_notifications(settings.database.url, projects, stack.base_dir))
    for name, module in SERVICES:
        if name == "simulate" and not with_simulator:
            continue
        if not available(module):
            print(f"  {name:9} not available in this build")
            continue
        # Each service connects as itself: its broker account and its database role.
        env = service_env(name, stack.broker_auth, stack.db_users, settings.database.url)
        if name == "api":
            env["F5G_API__BOOTSTRAP_KEY"] = admin_key
        if name in ("api", "notify") and "F5G_NOTIFY__ALLOW_PRIVATE_TARGETS" not in os.environ:
            # The local receivers (SMTP, webhook) listen on loopback: the named opt-out.
            env["F5G_NOTIFY__ALLOW_PRIVATE_TARGETS"] = '["127.0.0.0/8"]'
        if name == "notify" and "F5G_NOTIFY__DASHBOARD_URL" not in os.environ:
            env["F5G_NOTIFY__DASHBOARD_URL"] = f"http://{settings.api.host}:{settings.api.port}"
        if name == "ingest" and "F5G_INGEST__SHARE_GROUP" not in os.environ:
            # One ingest on one Mosquitto 2.0: a plain subscription, which its persistent
            # session keeps across broker restarts. Mosquitto does not restore `$share`
            # subscriptions, and messages arriving before ingest resubscribes are lost.
            env["F5G_INGEST__SHARE_GROUP"] = ""
        procs.append((name, start_service(name, log_dir, env)))
        time.sleep(0.5)

    api = f"http://{settings.api.host}:{settings.api.port}"
    print(
        f"""
factory5g is running.
  dashboard        {api}/   (sign in with the admin key below)
  admin API key    {admin_key}   (also in {stack.base_dir / ADMIN_KEY_FILE})
  API docs         {api}/docs
  API metrics      {api}/metrics
  ingest metrics   http://{settings.ingest.metrics_host}:{settings.ingest.metrics_port}/metrics
  rules metrics    http://{settings.rules.metrics_host}:{settings.rules.metrics_port}/metrics
  notify metrics   http://{settings.notify.metrics_host}:{settings.notify.metrics_port}/metrics
  commands metrics http://{settings.commands.metrics_host}:{settings.commands.metrics_port}/metrics
  mailbox          smtp://{HOST}:{SMTP_PORT} -> {stack.base_dir / MAIL_DIR}
  webhook calls    http://{HOST}:{WEBHOOK_PORT}/hook -> {stack.base_dir / WEBHOOK_LOG}
                   (factory5g dev mailbox lists both)
  MQTT broker      mqtt://{settings.mqtt.host}:{settings.mqtt.port}  (topics f5g/v1/#)
  database         {settings.database.url}
  logs             {log_dir}
Press Ctrl-C to stop.
""",
        flush=True,
    )

    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; see {log_dir / name}.log")
                    stopping = True
            time.sleep(0.5)
    finally:
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        print("services stopped; the stack keeps running (factory5g stack down stops it)")
