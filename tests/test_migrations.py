"""Migrations on a real PostgreSQL + TimescaleDB (Apache edition)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from services.core import db
from services.core.tables import HYPERTABLES, STREAM_KEYS, UNINDEXED_BY_PROJECT


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def test_upgrade_on_empty_database_creates_hypertables(new_database: Callable[..., str]) -> None:
    url = new_database(migrate=False)
    assert db.current_revisions(url) == set()
    db.migrate(url)
    assert db.current_revisions(url) == db.head_revisions()
    names = _scalar(
        url,
        "SELECT string_agg(hypertable_name, ',' ORDER BY hypertable_name) "
        "FROM timescaledb_information.hypertables",
    )
    assert isinstance(names, str)
    assert set(names.split(",")) == set(HYPERTABLES)
    for table in STREAM_KEYS:
        assert _scalar(url, f"SELECT count(*) FROM pg_indexes WHERE indexname = 'uq_{table}_key'")
        # Each index costs every insert: the high-rate tables keep only their key and the
        # hypertable's time index.
        expected = 2 if table in UNINDEXED_BY_PROJECT else 3
        assert _scalar(url, f"SELECT count(*) FROM pg_indexes WHERE tablename = '{table}'") == (
            expected
        )


def test_upgrade_twice_is_a_no_op(new_database: Callable[..., str]) -> None:
    url = new_database()
    before = _scalar(url, "SELECT count(*) FROM pg_class")
    db.migrate(url)
    db.migrate(url)
    assert _scalar(url, "SELECT count(*) FROM pg_class") == before
    assert db.current_revisions(url) == db.head_revisions()


def test_timescale_license_is_detected(database_url: str) -> None:
    info = db.timescale_info(database_url)
    assert info.version.startswith("2.")
    assert info.license in {"apache", "timescale"}
    # The local stack builds the Apache edition; the schema must not depend on more.
    assert info.apache_only is (info.license == "apache")
