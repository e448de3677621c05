"""Real PostgreSQL + TimescaleDB and Mosquitto instances in project-owned directories.

The local stack (`factory5g stack up`) and the test suite both use these classes, so the
tests run on exactly what users run. PostgreSQL refuses to run as root; when started by
root every server runs as the unprivileged system user `factory5g` (created on demand).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from services.security import db_roles

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
SERVICE_USER = "factory5g"
REPO_ROOT = Path(__file__).resolve().parents[2]


def dynsec_plugin() -> Path:
    """Mosquitto's dynamic-security plugin (Debian's `mosquitto` package ships it)."""
    found = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so")) + sorted(
        Path("/usr/lib").glob("mosquitto_dynamic_security.so")
    )
    if not found:
        raise StackError(
            "Mosquitto's dynamic-security plugin is not installed (run scripts/install-stack.sh)"
        )
    return found[0]


class StackError(RuntimeError):
    pass


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_service_user() -> None:
    if not _is_root():
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )


def _as_service_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *cmd] if _is_root() else cmd


def _own(path: Path) -> None:
    """Hand a directory tree to the service user and make the way to it traversable."""
    if not _is_root():
        return
    pw = pwd.getpwnam(SERVICE_USER)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Postgres:
    """One PostgreSQL 15 cluster with TimescaleDB preloaded, listening on loopback only.

    Every connection, TCP or Unix socket, authenticates with scram-sha-256. The bootstrap
    superuser (`superuser`) has a generated password and only sets databases up: it creates
    the schema owner (`user`, no superuser, no CREATEROLE/CREATEDB), the services' group
    roles and the TimescaleDB extension (`ensure_database`). Migrations and everything else
    run as the owner or as the services' own roles. Both passwords are kept in `passfile`
    (libpq's format, mode 0600), so `PGPASSFILE` pointed at it lets tools connect.
    """

    base_dir: Path
    port: int = 55432
    user: str = "factory5g"  # the schema owner
    database: str = "factory5g"
    durable: bool = True  # tests turn fsync off; the local stack keeps full durability
    settings: dict[str, str] = field(default_factory=dict)
    superuser: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def passfile(self) -> Path:
        return self.base_dir / "pgpass"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The schema owner's URL of `database`, password included."""
        return self._url(self.user, database)

    def url_as_superuser(self, database: str) -> str:
        return self._url(self.superuser, database)

    def _url(self, user: str, database: str) -> str:
        password = quote(self.password(user), safe="")
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def password(self, user: str) -> str:
        """The generated password of the superuser or the owner (made with the cluster)."""
        for line in self.passfile.read_text().splitlines() if self.passfile.exists() else []:
            *_, name, password = line.split(":")
            if name == user:
                return password
        if (self.data_dir / "PG_VERSION").exists():
            raise StackError(
                f"{self.data_dir} was made without passwords (it trusts every local "
                f"connection); stop it and remove {self.base_dir} to make a new one"
            )
        raise StackError(f"no password for {user}: the cluster in {self.data_dir} is not made")

    def _write_passfile(self) -> None:
        """Generate both passwords once; libpq ignores a passfile others could read."""
        lines = [
            f"*:*:*:{user}:{secrets.token_urlsafe(24)}" for user in (self.superuser, self.user)
        ]
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _run(self, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = subprocess.run(
            _as_service_user(cmd),
            check=True,
            text=True,
            capture_output=True,
            **kw,  # type: ignore[call-overload]
        )
        return result

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            self.password(self.superuser)  # a cluster from before passwords: say so
            return
        if not (PG_BIN / "initdb").exists():
            raise StackError(
                f"PostgreSQL {PG_MAJOR} is not installed (run scripts/install-stack.sh)"
            )
        ensure_service_user()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._write_passfile()
        pwfile = self.base_dir / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password(self.superuser) + "\n")
        _own(self.base_dir)
        try:
            self._run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink()
        # Password authentication for every connection; nothing is trusted.
        (self.data_dir / "pg_hba.conf").write_text(
            "# Written by factory5g: scram-sha-256 for every connection.\n"
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
            "password_encryption": "'scram-sha-256'",
            "shared_preload_libraries": "'timescaledb'",
            "timescaledb.telemetry_level": "off",
            "max_connections": "200",
            "shared_buffers": "'512MB'",
            "work_mem": "'16MB'",
            "maintenance_work_mem": "'256MB'",
            "max_wal_size": "'4GB'",
            "checkpoint_timeout": "'15min'",
            "wal_compression": "on",
            "timescaledb.max_background_workers": "4",
            "max_worker_processes": "16",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
        }
        if not self.durable:
            conf.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        conf.update(self.settings)
        with (self.data_dir / "postgresql.auto.conf").open("a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        _own(self.base_dir)

    def running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            return False
        return _pid_alive(pid)

    def start(self) -> None:
        self.init()
        if not self.running():
            self._run(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        self.psql(db_roles.owner_sql(self.user, self.password(self.user)))
        self.ensure_database(self.database)

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the bootstrap superuser (setting up databases and roles only)."""
        return self._run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                database,
                "-c",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": self.password(self.superuser)},
        ).stdout.strip()

    def ensure_database(self, name: str) -> None:
        """Create `name` owned by the schema owner, with the extension and the group roles
        only a superuser can create, so its migrations run as the owner."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists != "1":
            self.psql(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        cluster, in_database = db_roles.bootstrap_sql(name, self.user)
        for statement in cluster:
            self.psql(statement)
        for statement in in_database:
            self.psql(statement, database=name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Mosquitto:
    """One Mosquitto 2 broker on loopback with persistence, so queued QoS 1 survives restarts."""

    base_dir: Path
    port: int = 1883
    extra_config: str = ""
    # Opt-in security (the local stack turns it on; most tests keep an anonymous broker):
    # a broker account directory (services/security/broker_auth.py, dynamic security) ...
    auth_dir: Path | None = None
    # ... and a TLS device listener with `ca.crt`, `server.crt`, `server.key` in `tls_dir`.
    tls_port: int | None = None
    tls_dir: Path | None = None
    require_certificate: bool = False  # mutual TLS: the certificate's CN is the account

    @property
    def conf_file(self) -> Path:
        return self.base_dir / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "mosquitto.log"

    def write_config(self) -> None:
        ensure_service_user()
        (self.base_dir / "data").mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(
            "\n".join(
                [
                    "# Written by factory5g; edits are overwritten on start.",
                    f"listener {self.port} 127.0.0.1",
                    "protocol mqtt",
                    *self._security_config(),
                    "persistence true",
                    f"persistence_location {self.base_dir / 'data'}/",
                    "autosave_interval 5",
                    f"pid_file {self.pid_file}",
                    f"log_dest file {self.log_file}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "connection_messages false",
                    "set_tcp_nodelay true",
                    # Sessions of stopped consumers must keep every QoS 1 message, not drop them
                    # after the default 1000: the bound is bytes, not count.
                    "max_queued_messages 0",
                    "max_queued_bytes 1073741824",
                    "max_inflight_messages 0",
                    "max_packet_size 2097152",
                    "persistent_client_expiration 1d",
                    self.extra_config,
                    "",
                ]
            )
        )
        _own(self.base_dir)
        if self.auth_dir is not None:
            _own(self.auth_dir)

    def _security_config(self) -> list[str]:
        if self.auth_dir is None:
            return ["allow_anonymous true"]
        # Accounts, client-id binding and ACLs come from the dynamic-security plugin,
        # configured from the registry (services/security/broker_auth.py).
        from services.security.broker_auth import BrokerAuth

        auth = BrokerAuth(self.auth_dir)
        auth.render()
        lines = [
            "allow_anonymous false",
            f"plugin {dynsec_plugin()}",
            f"plugin_opt_config_file {auth.broker_config_file}",
        ]
        if self.tls_port is not None and self.tls_dir is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                "protocol mqtt",
                f"cafile {self.tls_dir / 'ca.crt'}",
                f"certfile {self.tls_dir / 'server.crt'}",
                f"keyfile {self.tls_dir / 'server.key'}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if self.require_certificate else 'false'}",
            ]
            if self.require_certificate:
                # The certificate's CN is the account, and (since a certificate login skips
                # the plugin's password check, where it binds the client id) the client id.
                lines += ["use_identity_as_username true", "use_username_as_clientid true"]
        return lines

    def reload(self) -> None:
        """SIGHUP (Mosquitto re-reads its configuration without dropping clients), and the
        service accounts re-applied to the running broker's dynamic-security plugin.
        Device changes need no reload: `BrokerAuth` applies them live."""
        pid = self.pid()
        if pid is None:
            raise StackError("mosquitto is not running")
        os.kill(pid, signal.SIGHUP)
        if self.auth_dir is not None:
            from services.security.broker_auth import BrokerAuth

            BrokerAuth(self.auth_dir).sync_services()

    def _publish_endpoint(self, up: bool) -> None:
        """Tell `BrokerAuth` where the broker serving its accounts listens, so account
        changes reach it live (and are only written for the next start when it is down)."""
        if self.auth_dir is None:
            return
        from services.security.broker_auth import BrokerAuth, write_endpoint

        auth = BrokerAuth(self.auth_dir)
        if up:
            write_endpoint(auth, "127.0.0.1", self.port)
        else:
            auth.endpoint_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        if self.running():
            return
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise StackError("mosquitto is not installed (run scripts/install-stack.sh)")
        self.write_config()
        if port_open("127.0.0.1", self.port):
            raise StackError(f"port {self.port} is already taken by another process")
        subprocess.run(_as_service_user([binary, "-c", str(self.conf_file), "-d"]), check=True)
        _wait(lambda: port_open("127.0.0.1", self.port), 15, f"mosquitto on port {self.port}")
        self._publish_endpoint(True)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        self._publish_endpoint(False)
        os.kill(pid, signal.SIGTERM)  # SIGTERM makes mosquitto save its persistence file
        _wait(lambda: not _pid_alive(pid), 30, "mosquitto to stop")

    def restart(self) -> None:
        self.stop()
        self.start()
