"""Database access shared by the services: URLs, migrations and TimescaleDB facts.

SQLAlchemy and Alembic are imported by the functions that use them (migrations, the
schema checks): the services' hot paths take only URLs and `PrimaryWatch` from here, and
importing both cost ingest a quarter of a second at every start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def sync_url(url: str) -> str:
    """SQLAlchemy URL for the synchronous driver used by migrations and admin commands."""
    return _sqlalchemy_hosts(_with_driver(url, "postgresql+psycopg2"))


def async_url(url: str) -> str:
    """SQLAlchemy URL for the asyncpg driver used by the API."""
    return _sqlalchemy_hosts(_with_driver(url, "postgresql+asyncpg"))


def _sqlalchemy_hosts(url: str) -> str:
    """A libpq multi-host URL (`user@h1:p1,h2:p2/db?target_session_attrs=read-write`, how
    services find the primary of a Patroni cluster) in SQLAlchemy's spelling, which cannot
    parse several hosts in the authority: the hosts move to repeated `host=` query keys,
    which both dialects hand to their driver. One-host URLs are returned unchanged."""
    scheme, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    if "," not in hostlist:
        return url
    path, _, query = tail.partition("?")
    hosts = "&".join(f"host={quote(h.strip(), safe=':[]')}" for h in hostlist.split(","))
    query = f"{hosts}&{query}" if query else hosts
    return f"{scheme}://{userinfo}{at}/{path}?{query}"


def asyncpg_dsn(url: str) -> str:
    """Plain libpq DSN for asyncpg.connect / create_pool (no SQLAlchemy driver suffix)."""
    return _with_driver(url, "postgresql")


def _with_driver(url: str, scheme: str) -> str:
    head, sep, rest = url.partition("://")
    if not sep or not head.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"{scheme}://{rest}"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


# The revision graph before it was made linear: 0003_api, 0004_roles and 0005_stream_indexes
# branched off 0001, 0006_least_privilege and 0007_optional_position off 0005, and 0006 also
# depended on 0004. A database migrated then records several heads, any down-closed set of
# this graph. Frozen: it describes databases that exist, whatever the chain becomes.
BRANCHED_GRAPH: Final[dict[str, tuple[str, ...]]] = {
    "0001": (),
    "0003_api": ("0001",),
    "0004_roles": ("0001",),
    "0005_stream_indexes": ("0001",),
    "0006_least_privilege": ("0005_stream_indexes", "0004_roles"),
    "0007_optional_position": ("0005_stream_indexes",),
}


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the schema to `revision` (the head by default); a no-op when already there.

    A database migrated while the graph branched is first re-recorded on the linear chain
    (`_adopt_branched`), so no revision it has runs again."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            recorded = set(MigrationContext.configure(conn).get_current_heads())
            if len(recorded) > 1:
                _adopt_branched(cfg, recorded)
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def branched_closure(recorded: set[str]) -> set[str]:
    """Every revision a database that records `recorded` (branched graph) has applied."""
    unknown = recorded - set(BRANCHED_GRAPH)
    if unknown:
        raise RuntimeError(
            f"database records revisions {sorted(unknown)} beside others: several heads are "
            f"only known from the branched graph of {sorted(BRANCHED_GRAPH)}"
        )
    applied: set[str] = set()
    todo = list(recorded)
    while todo:
        rev = todo.pop()
        if rev not in applied:
            applied.add(rev)
            todo.extend(BRANCHED_GRAPH[rev])
    return applied


def _adopt_branched(cfg: Config, recorded: set[str]) -> None:
    """Walk the linear chain up to the last revision the database has: stamp what it has
    (no DDL), run what it lacks (a branch it never took), so it ends on one chain revision."""
    from alembic import command
    from alembic.script import ScriptDirectory

    applied = branched_closure(recorded)
    script = ScriptDirectory.from_config(cfg)
    chain = [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]
    last = max(chain.index(rev) for rev in applied)
    stamped = False
    for rev in chain[: last + 1]:
        if rev in applied:
            # The first stamp replaces the branched rows; later ones move the single row.
            command.stamp(cfg, rev, purge=not stamped)
            stamped = True
        else:
            if not stamped:  # pragma: no cover - 0001 is under every branched head
                raise RuntimeError(f"{rev} is missing below every recorded head")
            command.upgrade(cfg, rev)


def head_revisions() -> set[str]:
    """What a fully migrated database records: the head of the linear chain."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return set(script.get_heads())


def revision_chain() -> list[str]:
    """Every revision of the linear chain, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def current_revisions(url: str) -> set[str]:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def applied_revisions(url: str) -> set[str]:
    """Every revision the database has: what it records and all below it on the chain."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return {
        rev.revision
        for current in current_revisions(url)
        for rev in script.iterate_revisions(current, "base")
        if rev is not None
    }


@dataclass(frozen=True)
class TimescaleInfo:
    version: str
    license: str

    @property
    def apache_only(self) -> bool:
        """The Apache edition lacks compression, continuous aggregates and policies."""
        return self.license != "timescale"


def timescale_info(url: str) -> TimescaleInfo:
    import sqlalchemy as sa

    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            version = conn.execute(
                sa.text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            ).scalar_one()
            license_ = conn.execute(sa.text("SHOW timescaledb.license")).scalar_one()
            return TimescaleInfo(str(version), str(license_))
    finally:
        engine.dispose()


# Which server a connection reached: address, port and postmaster start. A failover or a
# switchover moves the services to another server (another address, or behind a fixed
# Kubernetes service another postmaster); a restart of the primary changes the start time.
SERVER_SQL: Final = (
    "SELECT coalesce(host(inet_server_addr()), 'socket') || ':' "
    "|| coalesce(inet_server_port()::text, '') || '@' "
    "|| to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
)


@dataclass
class PrimaryWatch:
    """The database server a service writes to, and how often it changed under it.

    Services connect with one URL; behind a libpq multi-host URL
    (`target_session_attrs=read-write`) or a Patroni-managed endpoint that is whichever
    member is the primary. Each new connection reports the server it reached (`seen`, the
    answer of `SERVER_SQL`); a different server than the last one is a failover, counted
    for the metrics and shown by the health endpoints."""

    server: str | None = None
    previous: str | None = None
    failovers: int = 0
    failover_at: float | None = None  # wall clock of the last change

    def seen(self, server: str) -> bool:
        """Record the server a fresh connection reached; True when it is another one."""
        if server == self.server:
            return False
        changed = self.server is not None
        if changed:
            self.previous = self.server
            self.failovers += 1
            self.failover_at = time.time()
        self.server = server
        return changed

    def snapshot(self) -> dict[str, object]:
        return {
            "server": self.server,
            "failovers": self.failovers,
            "previous_server": self.previous,
            "last_failover_at": self.failover_at,
        }
