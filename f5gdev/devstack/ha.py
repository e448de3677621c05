"""A high-availability database on loopback: etcd, and PostgreSQL + TimescaleDB under Patroni.

The same engines a plant runs (the HA setup Timescale documents): Patroni keeps a leader
key in etcd, the leader runs the read-write primary, the other member a streaming replica.
`synchronous_mode: true` makes the replica a synchronous standby, so a commit returns only
once the replica has the WAL: a row acknowledged to a device survives the primary's loss.
With two members `synchronous_mode_strict: false` lets the primary go on alone while the
replica is away (writes keep flowing, at the price of one copy until it is back); strict
mode would stop every write instead (docs/operations.md#database-high-availability).

Services see one URL, a libpq multi-host URL with `target_session_attrs=read-write`
(`url_for`): the drivers try the members in turn and keep the one that accepts writes.

etcd runs one member by default: the tests and the benchmark share two cores, and three
members only add the quorum the leader key lives in, not a different failover path (the
Patroni members are what the tests kill). `etcd_members=3` starts the full quorum
(`factory5g stack up --ha` does).

Members run as the service user when started by root (PostgreSQL refuses root), from
Debian's `patroni` and `etcd-server` packages (scripts/install-stack.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from f5gdev.devstack.servers import (
    PG_BIN,
    StackError,
    _as_service_user,
    _own,
    _pid_alive,
    ensure_service_user,
    free_port,
)
from services.security import db_roles

SCOPE = "factory5g"
PATRONI = Path("/usr/bin/patroni")
ETCD = Path("/usr/bin/etcd")
SYSTEM_PYTHON = "/usr/bin/python3"
# Leader key lifetime and loop: the shortest Patroni accepts (ttl >= 20 s), so a killed
# primary is replaced within about ttl + loop_wait.
TTL_S = 20
LOOP_WAIT_S = 1
RETRY_TIMEOUT_S = 5


def _http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 3.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:  # Patroni answers 503 on a replica's /primary
        raw = exc.read()
        if method != "GET":
            raise StackError(
                f"{method} {url}: HTTP {exc.code} {raw.decode(errors='replace')}"
            ) from exc
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class EtcdMember:
    name: str
    base_dir: Path
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "etcd.pid"

    def start(self, initial_cluster: str) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _own(self.base_dir)
        log = (self.base_dir / "etcd.log").open("ab")
        self.proc = subprocess.Popen(
            _as_service_user(
                [
                    str(ETCD),
                    "--name",
                    self.name,
                    "--data-dir",
                    str(self.base_dir / "data"),
                    "--listen-client-urls",
                    self.client_url,
                    "--advertise-client-urls",
                    self.client_url,
                    "--listen-peer-urls",
                    self.peer_url,
                    "--initial-advertise-peer-urls",
                    self.peer_url,
                    "--initial-cluster",
                    initial_cluster,
                    "--initial-cluster-token",
                    f"{SCOPE}-{self.base_dir.parent.name}",
                    "--initial-cluster-state",
                    "new",
                    "--log-level",
                    "warn",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self.proc.pid}\n")

    def healthy(self) -> bool:
        try:
            answer = _http("GET", f"{self.client_url}/health", timeout=1.0)
        except (OSError, StackError):
            return False
        return isinstance(answer, dict) and answer.get("health") == "true"

    def stop(self) -> None:
        _stop_pid(self.proc, self.pid_file, 15.0)


def _read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _stop_pid(proc: subprocess.Popen[bytes] | None, pid_file: Path, timeout: float) -> bool:
    """SIGTERM to the process started here or, from another process (`factory5g stack
    down`), the one its pid file names; SIGKILL to its group after `timeout`. True when
    it had to be killed."""
    pid = proc.pid if proc is not None else _read_pid(pid_file)
    killed = False
    if pid is not None and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            _wait(lambda: _reaped(proc, pid), timeout, f"process {pid} to stop")
        except StackError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait(lambda: _reaped(proc, pid), 15, f"process {pid} to die")
            killed = True
    pid_file.unlink(missing_ok=True)
    return killed


def _reaped(proc: subprocess.Popen[bytes] | None, pid: int) -> bool:
    if proc is not None:
        return proc.poll() is not None
    return not _pid_alive(pid)


@dataclass
class PatroniMember:
    name: str
    base_dir: Path
    pg_port: int
    rest_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def config_file(self) -> Path:
        return self.base_dir / "patroni.yml"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def status(self) -> dict[str, Any]:
        """Patroni's own view of this member (`GET /patroni`); empty when it is down."""
        try:
            answer = _http("GET", f"{self.rest_url}/patroni", timeout=1.0)
        except (OSError, StackError):
            return {}
        return answer if isinstance(answer, dict) else {}

    def is_primary(self) -> bool:
        st = self.status()
        return st.get("role") in ("master", "primary") and st.get("state") == "running"

    def is_replica(self) -> bool:
        st = self.status()
        return st.get("role") == "replica" and st.get("state") in ("running", "streaming")

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "patroni.pid"

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return _read_pid(self.pid_file) is not None

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> None:
        log = (self.base_dir / "patroni.log").open("ab")
        self.proc = subprocess.Popen(
            _as_service_user([SYSTEM_PYTHON, str(PATRONI), str(self.config_file)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self.proc.pid}\n")

    def postgres_pids(self, title: str | None = None) -> list[int]:
        """This member's PostgreSQL processes, the postmaster and its children (each child
        is a session of its own: PostgreSQL calls setsid() in every child), optionally only
        those whose process title contains `title` (e.g. "walreceiver")."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            ppid = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")), "")
            if int(entry.name) != postmaster and ppid != str(postmaster):
                continue
            if title is None or title in cmdline:
                found.append(int(entry.name))
        return found

    def kill(self) -> None:
        """The machine dies: SIGKILL to Patroni and to every process of its PostgreSQL
        (postmaster, backends, walsender), nothing shut down cleanly."""
        postmaster = self.postmaster_pid()
        pid = self.proc.pid if self.proc is not None else _read_pid(self.pid_file)
        if pid is not None and self.alive():
            os.killpg(pid, signal.SIGKILL)
            _wait(lambda: _reaped(self.proc, pid), 15, f"{self.name}'s Patroni to die")
        if postmaster is not None:
            for pid in self.postgres_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            _wait(lambda: not _pid_alive(postmaster), 15, f"{self.name}'s postmaster to die")

    def stop(self) -> None:
        # SIGTERM: Patroni stops PostgreSQL (fast) and releases its leader key.
        _stop_pid(self.proc, self.pid_file, 60.0)
        postmaster = self.postmaster_pid()
        if postmaster is not None:  # left behind by a killed Patroni
            subprocess.run(
                _as_service_user(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"]
                ),
                capture_output=True,
            )


@dataclass
class HaPostgres:
    """Two (or more) PostgreSQL 15 + TimescaleDB members under Patroni, etcd beside them.

    Same surface as `servers.Postgres` where the tests and the stack need it (`url_for`,
    `psql`, `ensure_database`, `password`), plus the HA operations (`primary`,
    `kill_primary`, `switchover`, `wait_replica`)."""

    base_dir: Path
    members: int = 2
    etcd_members: int = 1
    durable: bool = True
    # False: asynchronous streaming replication, what a failover can lose (the benchmark's
    # comparison and tests/test_db_failover.py's record of it); never the default.
    synchronous: bool = True
    user: str = "factory5g"
    database: str = "factory5g"
    superuser: str = "postgres"
    replication_user: str = "replicator"
    pg_ports: list[int] = field(default_factory=list)
    _etcd: list[EtcdMember] = field(default_factory=list)
    _nodes: list[PatroniMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports = self._ports()
        self._etcd = [
            EtcdMember(f"etcd{i}", self.base_dir / f"etcd{i}", *ports[f"etcd{i}"])
            for i in range(self.etcd_members)
        ]
        self._nodes = [
            PatroniMember(f"pg{i}", self.base_dir / f"pg{i}", *ports[f"pg{i}"])
            for i in range(self.members)
        ]
        self.pg_ports = [n.pg_port for n in self._nodes]

    def _ports(self) -> dict[str, tuple[int, int]]:
        """Ports chosen once and kept in `ports.json`, so a restarted stack keeps its URL."""
        path = self.base_dir / "ports.json"
        if path.exists():
            stored: dict[str, list[int]] = json.loads(path.read_text())
            return {k: (v[0], v[1]) for k, v in stored.items()}
        taken: set[int] = set()

        def pick() -> int:
            while True:
                port = free_port()
                if port not in taken:
                    taken.add(port)
                    return port

        ports = {f"etcd{i}": (pick(), pick()) for i in range(self.etcd_members)}
        ports.update({f"pg{i}": (pick(), pick()) for i in range(self.members)})
        self.base_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports))
        return ports

    # ------------------------------------------------------------------ credentials

    @property
    def passfile(self) -> Path:
        return self.base_dir / "pgpass"

    def password(self, user: str) -> str:
        if not self.passfile.exists():
            self.base_dir.mkdir(parents=True, exist_ok=True)
            lines = [
                f"*:*:*:{name}:{secrets.token_urlsafe(24)}"
                for name in (self.superuser, self.user, self.replication_user)
            ]
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
        for line in self.passfile.read_text().splitlines():
            *_, name, password = line.split(":")
            if name == user:
                return password
        raise StackError(f"no password for {user} in {self.passfile}")

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.pg_ports)

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str, user: str | None = None) -> str:
        """libpq multi-host URL of `database`: whichever member accepts writes."""
        user = user or self.user
        password = quote(self.password(user), safe="")
        return (
            f"postgresql://{user}:{password}@{self.hosts}/{database}"
            "?target_session_attrs=read-write"
        )

    # ------------------------------------------------------------------ configuration

    def _write_configs(self) -> None:
        etcd_hosts = [f"127.0.0.1:{m.client_port}" for m in self._etcd]
        parameters: dict[str, Any] = {
            "shared_preload_libraries": "timescaledb",
            "timescaledb.telemetry_level": "off",
            "password_encryption": "scram-sha-256",
            "max_connections": 200,
            "shared_buffers": "128MB",
            "work_mem": "16MB",
            "max_wal_size": "2GB",
            "wal_compression": "on",
            "wal_level": "replica",
            "hot_standby": "on",
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "512MB",
            "timescaledb.max_background_workers": 4,
            "max_worker_processes": 16,
            # A commit returns once the synchronous standby has flushed its WAL: what ingest
            # acknowledges is on both members.
            "synchronous_commit": "on" if self.synchronous else "local",
            "log_min_messages": "warning",
        }
        if not self.durable:
            # Tests: no fsync (a killed process loses nothing the kernel already has); the
            # synchronous standby is kept, it is what the failover tests prove.
            parameters.update({"fsync": "off", "full_page_writes": "off"})
        for node in self._nodes:
            node.base_dir.mkdir(parents=True, exist_ok=True)
            config = {
                "scope": SCOPE,
                "name": node.name,
                "log": {"level": "WARNING"},
                "restapi": {
                    "listen": f"127.0.0.1:{node.rest_port}",
                    "connect_address": f"127.0.0.1:{node.rest_port}",
                },
                "etcd3": {"hosts": etcd_hosts},
                "bootstrap": {
                    "dcs": {
                        "ttl": TTL_S,
                        "loop_wait": LOOP_WAIT_S,
                        "retry_timeout": RETRY_TIMEOUT_S,
                        "maximum_lag_on_failover": 1048576,
                        "synchronous_mode": self.synchronous,
                        "synchronous_mode_strict": False,
                        "postgresql": {
                            "use_pg_rewind": True,
                            "use_slots": True,
                            "parameters": parameters,
                        },
                    },
                    "initdb": [
                        {"encoding": "UTF8"},
                        {"locale": "C.UTF-8"},
                        {"auth": "scram-sha-256"},
                    ],
                },
                "postgresql": {
                    "listen": f"127.0.0.1:{node.pg_port}",
                    "connect_address": f"127.0.0.1:{node.pg_port}",
                    "data_dir": str(node.data_dir),
                    "bin_dir": str(PG_BIN),
                    "pgpass": str(node.base_dir / "pgpass.patroni"),
                    "authentication": {
                        "superuser": {
                            "username": self.superuser,
                            "password": self.password(self.superuser),
                        },
                        "replication": {
                            "username": self.replication_user,
                            "password": self.password(self.replication_user),
                        },
                        "rewind": {
                            "username": self.superuser,
                            "password": self.password(self.superuser),
                        },
                    },
                    "parameters": {"unix_socket_directories": str(node.base_dir)},
                    # Password authentication for every connection; nothing is trusted.
                    "pg_hba": [
                        "local all all scram-sha-256",
                        "host all all 127.0.0.1/32 scram-sha-256",
                        f"host replication {self.replication_user} 127.0.0.1/32 scram-sha-256",
                    ],
                },
                "tags": {"nofailover": False, "noloadbalance": False},
            }
            # JSON is YAML: no YAML writer needed.
            fd = os.open(node.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(config, f, indent=1)

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 180.0) -> None:
        for binary in (PATRONI, ETCD):
            if not binary.exists():
                raise StackError(f"{binary} is not installed (run scripts/install-stack.sh)")
        ensure_service_user()
        self.password(self.superuser)
        self._write_configs()
        _own(self.base_dir)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self._etcd)
        for member in self._etcd:
            if not member.healthy():
                member.start(initial)
        _wait(lambda: all(m.healthy() for m in self._etcd), 60, "etcd to be healthy")
        # The first member bootstraps the cluster; the others clone it from the primary.
        first = self._nodes[0]
        if not first.alive():
            first.start()
        _wait(lambda: any(n.is_primary() for n in self._nodes), timeout, "a Patroni primary")
        for node in self._nodes[1:]:
            if not node.alive():
                node.start()
        self.wait_replica(timeout)
        primary = self.primary()
        self.psql(db_roles.owner_sql(self.user, self.password(self.user)), port=primary.pg_port)
        self.ensure_database(self.database)

    def stop(self) -> None:
        for node in reversed(self._nodes):
            node.stop()
        for member in self._etcd:
            member.stop()

    def running(self) -> bool:
        return any(n.is_primary() for n in self._nodes)

    # ------------------------------------------------------------------ HA operations

    @property
    def nodes(self) -> list[PatroniMember]:
        return list(self._nodes)

    @property
    def data_dir(self) -> Path:
        """The current primary's data directory (the first member's while none is), where
        tools that profile "the database" find its postmaster.pid."""
        for node in self._nodes:
            if node.is_primary():
                return node.data_dir
        return self._nodes[0].data_dir

    def primary(self) -> PatroniMember:
        for node in self._nodes:
            if node.is_primary():
                return node
        raise StackError("no member is the primary")

    def wait_primary(self, timeout: float = 120.0, other_than: str | None = None) -> PatroniMember:
        found: list[PatroniMember] = []

        def check() -> bool:
            for node in self._nodes:
                if node.name != other_than and node.is_primary():
                    found.append(node)
                    return True
            return False

        _wait(check, timeout, "a new primary")
        return found[0]

    def sync_standby(self) -> str | None:
        """The member Patroni made the synchronous standby (the only one it promotes)."""
        for node in self._nodes:
            if node.alive():
                try:
                    answer = _http("GET", f"{node.rest_url}/cluster", timeout=1.0)
                except (OSError, StackError):
                    continue
                if isinstance(answer, dict):
                    for m in answer.get("members", []):
                        if m.get("role") == "sync_standby":
                            return str(m["name"])
                    return None
        return None

    def wait_replica(self, timeout: float = 120.0) -> None:
        """Every live member but the primary streams, and one is the synchronous standby."""

        def ready() -> bool:
            replicas = [n for n in self._nodes if n.alive() and not n.is_primary()]
            return (
                bool(replicas)
                and all(n.is_replica() for n in replicas)
                and (not self.synchronous or self.sync_standby() is not None)
            )

        _wait(ready, timeout, "a streaming (synchronous) standby")

    def kill_primary(self) -> PatroniMember:
        primary = self.primary()
        primary.kill()
        return primary

    @contextlib.contextmanager
    def replication_stalled(self) -> Iterator[None]:
        """The primary's WAL senders stopped (SIGSTOP) for the duration: the primary goes
        on writing WAL no standby receives (stopping the standby's receiver would not do:
        what the sender already wrote waits in the socket and arrives later). With a
        synchronous standby commits wait instead, and a COMMIT cut off by the primary's
        death has an unknown outcome; with asynchronous replication they return and a
        failover loses them."""
        stopped: list[int] = []
        try:
            for pid in self.primary().postgres_pids("walsender"):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            if not stopped:
                raise StackError("no WAL sender to stall")
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def switchover(self, candidate: str | None = None) -> None:
        """A planned change of primary through Patroni's REST API (`POST /switchover`)."""
        primary = self.primary()
        body: dict[str, Any] = {"leader": primary.name}
        if candidate is not None:
            body["candidate"] = candidate
        _http("POST", f"{primary.rest_url}/switchover", body, timeout=60.0)

    # ------------------------------------------------------------------ SQL

    def psql(self, sql: str, database: str = "postgres", port: int | None = None) -> str:
        """Run `sql` on the primary as the bootstrap superuser (setting up only)."""
        port = port if port is not None else self.primary().pg_port
        result = subprocess.run(
            _as_service_user(
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
                    str(port),
                    "-U",
                    self.superuser,
                    "-d",
                    database,
                    "-c",
                    sql,
                ]
            ),
            check=False,
            text=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password(self.superuser)},
        )
        if result.returncode != 0:
            raise StackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def ensure_database(self, name: str) -> None:
        """As `servers.Postgres.ensure_database`: the database, its extension and the
        group roles, on the primary (the replica receives them by replication)."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists != "1":
            self.psql(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        cluster, in_database = db_roles.bootstrap_sql(name, self.user)
        for statement in cluster:
            self.psql(statement)
        for statement in in_database:
            self.psql(statement, database=name)
