"""The local stack's security wiring: service identities and the `devices` commands."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from f5gdev.devstack.servers import free_port
from f5gdev.devstack.stack import LocalStack
from f5gdev.devstack.stack_accounts import DatabaseUsers, service_env, url_as
from services.cli import app
from services.security.broker_auth import BrokerAuth

OWNER = "postgresql://factory5g@127.0.0.1:55432/factory5g"


def test_each_service_gets_its_own_broker_account_and_database_role(tmp_path: Path) -> None:
    auth, users = BrokerAuth(tmp_path / "auth"), DatabaseUsers(tmp_path / "secrets")
    envs = {s: service_env(s, auth, users, OWNER) for s in ("ingest", "rules", "api", "simulate")}
    assert {e["F5G_MQTT__USERNAME"] for e in envs.values()} == {
        "ingest", "rules", "api", "simulator"
    }  # fmt: skip
    assert len({e["F5G_MQTT__PASSWORD"] for e in envs.values()}) == 4
    assert envs["ingest"]["F5G_DATABASE__URL"].startswith("postgresql://f5g_ingest:")
    assert envs["api"]["F5G_DATABASE__URL"].endswith("@127.0.0.1:55432/factory5g")
    # The simulator registers its demo projects with a role of its own, not as the owner.
    assert envs["simulate"]["F5G_DATABASE__URL"].startswith("postgresql://f5g_simulate:")
    # Secrets are stable across calls and private to the owner.
    assert service_env("ingest", auth, users, OWNER) == envs["ingest"]
    assert users.file.stat().st_mode & 0o077 == 0
    assert auth.registry_file.stat().st_mode & 0o077 == 0


def test_url_as_quotes_the_password() -> None:
    assert url_as(OWNER, "u", "p@ss:/w") == "postgresql://u:p%40ss%3A%2Fw@127.0.0.1:55432/factory5g"


def test_local_stack_broker_requires_authentication(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "stack", mqtt_port=free_port())
    stack.ensure_accounts()
    stack.mosquitto.write_config()
    conf = stack.mosquitto.conf_file.read_text()
    assert "allow_anonymous false" in conf
    assert "allow_anonymous true" not in conf
    assert "mosquitto_dynamic_security.so" in conf
    assert f"plugin_opt_config_file {stack.broker_auth.broker_config_file}" in conf
    config = json.loads(stack.broker_auth.broker_config_file.read_text())
    assert config["defaultACLAccess"]["subscribe"] is False
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert {"acltype": "subscribePattern", "topic": "f5g/v1/#", "priority": 0, "allow": True} in (
        roles["service/ingest"]
    )
    # Services have no fixed client id (replicas), the accounts exist with hashed passwords.
    clients = {c["username"]: c for c in config["clients"]}
    assert {"ingest", "rules", "api", "simulator", "factory5g-admin"} <= set(clients)
    assert "clientid" not in clients["ingest"]
    assert stack.broker_auth.service_credentials("ingest").password not in json.dumps(config)


def test_devices_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    auth_dir = str(tmp_path / f"auth-{uuid.uuid4().hex[:6]}")
    out = runner.invoke(app, ["devices", "provision", "p1", "agv", "agv-7", "--auth-dir", auth_dir])
    assert out.exit_code == 0, out.output
    assert "username: dev/p1/agv/agv-7" in out.output
    assert "client id: dev/p1/agv/agv-7" in out.output
    config = json.loads((Path(auth_dir) / "dynamic-security.json").read_text())
    device = next(c for c in config["clients"] if c["username"] == "dev/p1/agv/agv-7")
    assert device["clientid"] == "dev/p1/agv/agv-7"
    reserved = runner.invoke(
        app, ["devices", "provision", "p1", "alarms", "x", "--auth-dir", auth_dir]
    )
    assert reserved.exit_code == 2
    assert "reserved" in reserved.output
    listed = runner.invoke(app, ["devices", "list", "--auth-dir", auth_dir])
    assert "f5g/v1/p1/agv/agv-7/#" in listed.output
    bad = runner.invoke(app, ["devices", "provision", "p1", "agv", "a/b", "--auth-dir", auth_dir])
    assert bad.exit_code == 2
    assert "not a valid id" in bad.output
    gone = runner.invoke(app, ["devices", "revoke", "p1", "agv", "agv-7", "--auth-dir", auth_dir])
    assert gone.exit_code == 0, gone.output
    assert "dev/p1/agv/agv-7" not in (Path(auth_dir) / "accounts.json").read_text()
    assert "dev/p1/agv/agv-7" not in (Path(auth_dir) / "dynamic-security.json").read_text()
    again = runner.invoke(app, ["devices", "revoke", "p1", "agv", "agv-7", "--auth-dir", auth_dir])
    assert again.exit_code == 1
