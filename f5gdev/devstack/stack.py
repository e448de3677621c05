"""The local stack: one Mosquitto and one PostgreSQL + TimescaleDB under `.stack/`.

The HA database, the database accounts and the broker's accounts are imported where they
are used: every service started from a checkout imports this module (for
`use_local_passfile`), and those modules were a tenth of ingest's start.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from f5gdev.devstack.servers import REPO_ROOT, Mosquitto, Postgres, StackError

if TYPE_CHECKING:
    from f5gdev.devstack.ha import HaPostgres
    from f5gdev.devstack.stack_accounts import DatabaseUsers
    from services.security.broker_auth import BrokerAuth

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-stack.sh"


def stack_dir() -> Path:
    return Path(os.environ.get("F5G_STACK_DIR", REPO_ROOT / ".stack")).resolve()


def use_local_passfile() -> None:
    """Let libpq and asyncpg find the local stack's database passwords (the default
    database URL names no password), unless PGPASSFILE points elsewhere already."""
    passfile = LocalStack.default().postgres.passfile
    if "PGPASSFILE" not in os.environ and passfile.exists():
        os.environ["PGPASSFILE"] = str(passfile)


@dataclass
class LocalStack:
    base_dir: Path
    pg_port: int = 55432
    mqtt_port: int = 1883
    mqtts_port: int = 8883

    @classmethod
    def default(cls) -> LocalStack:
        return cls(stack_dir())

    @property
    def postgres(self) -> Postgres:
        return Postgres(self.base_dir / "postgres", port=self.pg_port)

    @property
    def ha_postgres(self) -> HaPostgres:
        """The HA database (`factory5g stack up --ha`): a 3-member etcd and two PostgreSQL +
        TimescaleDB members under Patroni, in `ha/` beside the single PostgreSQL."""
        from f5gdev.devstack.ha import HaPostgres

        return HaPostgres(self.base_dir / "ha", etcd_members=3)

    @property
    def broker_auth(self) -> BrokerAuth:
        """Broker accounts; inside the broker's directory so it owns and can read them."""
        from services.security.broker_auth import BrokerAuth

        return BrokerAuth(self.base_dir / "mosquitto" / "auth")

    @property
    def tls_dir(self) -> Path:
        return self.base_dir / "mosquitto" / "tls"

    @property
    def db_users(self) -> DatabaseUsers:
        from f5gdev.devstack.stack_accounts import DatabaseUsers

        return DatabaseUsers(self.base_dir / "secrets")

    @property
    def mosquitto(self) -> Mosquitto:
        tls = (self.tls_dir / "server.crt").exists()
        return Mosquitto(
            self.base_dir / "mosquitto",
            port=self.mqtt_port,
            auth_dir=self.broker_auth.directory,
            tls_port=self.mqtts_port if tls else None,
            tls_dir=self.tls_dir if tls else None,
        )

    def ensure_accounts(self) -> None:
        """Broker files and every service account, before the broker first reads them."""
        from services.security.broker_auth import SERVICE_ACLS

        auth = self.broker_auth
        auth.ensure_files()
        for name in SERVICE_ACLS:
            auth.service_credentials(name)

    def ensure_db_users(self) -> None:
        """LOGIN users of the service roles (the group roles come from the bootstrap step in
        Postgres.ensure_database), created by the superuser: the owner may not create roles."""
        for statement in self.db_users.create_sql():
            self.postgres.psql(statement)

    def install(self) -> None:
        """Install missing server packages and build TimescaleDB if needed (idempotent)."""
        env = dict(os.environ, F5G_STACK_BUILD_DIR=str(self.base_dir / "build"))
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env)
        if result.returncode != 0:
            raise StackError(f"{INSTALL_SCRIPT} failed with exit code {result.returncode}")

    def up(self) -> None:
        self.install()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.ensure_accounts()
        mq = self.mosquitto
        if mq.running() and "mosquitto_dynamic_security" not in mq.conf_file.read_text():
            print(
                "warning: the running broker was started without the dynamic-security "
                "accounts (per-device client ids and ACLs); restart it "
                "(factory5g stack down && factory5g stack up) to turn them on"
            )
        if mq.running():
            mq.reload()  # service accounts may have been added since it started
        mq.start()

    def up_ha(self) -> None:
        """The HA database beside the broker; its URL is `ha_postgres.url`."""
        self.install()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.ha_postgres.start()

    def down(self) -> None:
        self.mosquitto.stop()
        self.postgres.stop()
        if (self.base_dir / "ha").exists():
            self.ha_postgres.stop()

    def status(self) -> dict[str, str]:
        pg, mq = self.postgres, self.mosquitto
        return {
            "postgres": f"{'running' if pg.running() else 'stopped'}  "
            f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}"
            f"  (passwords in {pg.passfile})",
            "mosquitto": f"{'running' if mq.running() else 'stopped'}  mqtt://127.0.0.1:{mq.port}"
            + (f", mqtts://127.0.0.1:{mq.tls_port}" if mq.tls_port else "")
            + f"  (accounts in {self.broker_auth.directory})",
            "data": str(self.base_dir),
            **self._ha_status(),
        }

    def _ha_status(self) -> dict[str, str]:
        if not (self.base_dir / "ha").exists():
            return {}
        ha = self.ha_postgres
        if not ha.running():
            return {"ha": "stopped"}
        return {
            "ha": f"running  primary {ha.primary().name}, synchronous standby "
            f"{ha.sync_standby()}  {ha.url_for(ha.database).split('@', 1)[1]}"
            f"  (passwords in {ha.passfile})"
        }
