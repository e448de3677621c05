"""Database access shared by the services: URLs, migrations and TimescaleDB facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def sync_url(url: str) -> str:
    """SQLAlchemy URL for the synchronous driver used by migrations and admin commands."""
    return _with_driver(url, "postgresql+psycopg2")


def async_url(url: str) -> str:
    """SQLAlchemy URL for the asyncpg driver used by the API."""
    return _with_driver(url, "postgresql+asyncpg")


def asyncpg_dsn(url: str) -> str:
    """Plain libpq DSN for asyncpg.connect / create_pool (no SQLAlchemy driver suffix)."""
    return _with_driver(url, "postgresql")


def _with_driver(url: str, scheme: str) -> str:
    head, sep, rest = url.partition("://")
    if not sep or not head.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"{scheme}://{rest}"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the schema to `revision` (all heads by default); a no-op when already there."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def head_revisions() -> set[str]:
    """What a fully migrated database records: every head, less those another head depends
    on (0006_least_privilege depends on 0004_roles, and Alembic then keeps only 0006)."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    below = {
        rev.revision
        for head in heads
        for rev in script.iterate_revisions(head, "base")
        if rev is not None and rev.revision != head
    }
    return heads - below


def current_revisions(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class TimescaleInfo:
    version: str
    license: str

    @property
    def apache_only(self) -> bool:
        """The Apache edition lacks compression, continuous aggregates and policies."""
        return self.license != "timescale"


def timescale_info(url: str) -> TimescaleInfo:
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
