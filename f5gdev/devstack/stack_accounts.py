"""Credentials of the local stack's services: broker accounts and database login users.

Secrets are generated on first use and kept under the stack directory (`.stack/`, never
in the repository), so `factory5g up` can hand each service its own identity through
the environment: F5G_MQTT__USERNAME / F5G_MQTT__PASSWORD and F5G_DATABASE__URL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from services.security import db_roles
from services.security.broker_auth import BrokerAuth
from services.security.passwords import new_secret

# Service name in `factory5g up` -> broker account. The simulator's account stands in for
# a whole fleet of devices; real devices get per-device accounts (`devices provision`).
BROKER_ACCOUNT = {
    "ingest": "ingest",
    "rules": "rules",
    "api": "api",
    "simulate": "simulator",
    "commands": "commands",
}


class DatabaseUsers:
    """LOGIN users of the service groups, passwords in `<dir>/db_users.json` (mode 0600)."""

    def __init__(self, directory: Path) -> None:
        self.file = directory / "db_users.json"

    def _load(self) -> dict[str, str]:
        if not self.file.exists():
            return {}
        data: dict[str, str] = json.loads(self.file.read_text())
        return data

    def password(self, service: str) -> tuple[str, str]:
        """(user, password) of a service's login user, created in the file on first use."""
        if service not in db_roles.SERVICE_GROUP:
            raise ValueError(f"no database role for service {service!r}")
        data = self._load()
        if service not in data:
            data[service] = new_secret()
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
        return f"f5g_{service}", data[service]

    def create_sql(self) -> list[str]:
        """Statements that create or refresh every login user; the superuser runs them (the
        group roles come from the bootstrap step, the owner may not create roles)."""
        out = []
        for service, group in db_roles.SERVICE_GROUP.items():
            user, password = self.password(service)
            out.append(db_roles.login_user_sql(user, group, password))
        return out


def url_as(url: str, user: str, password: str) -> str:
    """The same database URL with another user and password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_env(
    service: str, auth: BrokerAuth | None, users: DatabaseUsers | None, owner_url: str
) -> dict[str, str]:
    """Environment overrides giving `service` its own broker account and database role."""
    env: dict[str, str] = {}
    if auth is not None and service in BROKER_ACCOUNT:
        creds = auth.service_credentials(BROKER_ACCOUNT[service])
        env["F5G_MQTT__USERNAME"] = creds.username
        env["F5G_MQTT__PASSWORD"] = creds.password
    if auth is not None and service == "api":
        # The API issues device and board credentials into the same account directory
        # the broker serves (docs/security.md, credentials through the API).
        env["F5G_API__BROKER_AUTH_DIR"] = str(auth.directory)
    if users is not None and service in db_roles.SERVICE_GROUP:
        env["F5G_DATABASE__URL"] = url_as(owner_url, *users.password(service))
    return env
