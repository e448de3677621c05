"""Migrations on a real PostgreSQL + TimescaleDB (Apache edition)."""

from __future__ import annotations

import ast
import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from f5gdev.devstack.servers import PG_BIN
from services.core import db
from services.core.tables import HYPERTABLES, STREAM_KEYS, UNINDEXED_BY_PROJECT

PARTIAL_INDEXES = {"telemetry": "ix_telemetry_machine_state"}


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
        # hypertable's time index. A partial index takes only the rows its predicate picks
        # (telemetry: the machine-state metrics OEE reads, 0012_oee), and only those listed.
        expected = 2 if table in UNINDEXED_BY_PROJECT else 3
        full = (
            f"SELECT count(*) FROM pg_indexes WHERE tablename = '{table}' "
            "AND indexdef NOT LIKE '% WHERE %'"
        )
        assert _scalar(url, full) == expected
        partial = (
            "SELECT coalesce(string_agg(indexname, ','), '') FROM pg_indexes "
            f"WHERE tablename = '{table}' AND indexdef LIKE '% WHERE %'"
        )
        assert _scalar(url, partial) == PARTIAL_INDEXES.get(table, "")


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


# --- one linear chain of frozen revisions, and databases from the branched graph ---

VERSIONS = db.MIGRATIONS_DIR / "versions"


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(db.alembic_config())


def test_the_chain_is_linear_with_one_head() -> None:
    script = _script()
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions("base", "heads"))
    assert len(revisions) == len(list(VERSIONS.glob("*.py")))
    for rev in revisions:
        # One parent each (the base none), no depends_on: nothing branches or merges.
        assert isinstance(rev.down_revision, str | None), rev.revision
        assert not rev.dependencies, rev.revision
    # Every revision of the branched graph is on the chain, so databases migrated then
    # are recognised.
    assert set(db.BRANCHED_GRAPH) <= {rev.revision for rev in revisions}


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
    return modules


def test_migrations_import_nothing_from_the_live_code() -> None:
    """A migration must do the same whenever it runs: its DDL is written out, so it may use
    Alembic and SQLAlchemy but nothing of the project (which changes under it)."""
    allowed = {"__future__", "alembic", "sqlalchemy"}
    files = sorted(VERSIONS.glob("*.py"))
    assert files
    for path in files:
        imported = _imports(path)
        assert imported <= allowed | {m for m in imported if m.split(".")[0] in allowed}, (
            path.name,
            imported,
        )
    # The check sees what it is meant to catch.
    assert _imports(Path(__file__)) & {"services.core"}


def _down_closed_sets() -> list[frozenset[str]]:
    """Every set of revisions a database could have applied in the branched graph (each
    with its parents), with more than one recorded head."""
    names = sorted(set(db.BRANCHED_GRAPH) - {"0001"})
    found = []
    for r in range(1, len(names) + 1):
        for combo in itertools.combinations(names, r):
            applied = frozenset({"0001", *combo})
            if db.branched_closure(set(applied)) == applied and len(_heads(applied)) > 1:
                found.append(applied)
    return found


def _heads(applied: frozenset[str]) -> set[str]:
    below = {parent for rev in applied for parent in db.branched_closure({rev}) - {rev}}
    return set(applied) - below


def _schema(url: str) -> str:
    """pg_dump --schema-only, normalised (`_normalised`)."""
    out = subprocess.run(
        [str(PG_BIN / "pg_dump"), "--schema-only", "-d", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return _normalised(out)


def _normalised(out: str) -> str:
    """A schema dump without its SQL comments and per-dump \\restrict key."""
    lines = [
        line
        for line in out.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    # An object's grants are dumped in the order of its ACL, which is the order they were
    # given: a table created before 0004_roles' default privileges lists the API role after
    # the ingest role, one created after them before it. Same rights; each run of GRANT and
    # REVOKE statements is compared as a set.
    runs = itertools.groupby(lines, key=lambda line: line.startswith(("GRANT ", "REVOKE ")))
    return "\n".join(line for acl, run in runs for line in (sorted(run) if acl else run))


def _build_branched(url: str, applied: frozenset[str]) -> None:
    """Apply `applied` as the branched graph did, in its order, and record its heads."""
    script = _script()
    engine = sa.create_engine(db.sync_url(url))
    try:
        db.migrate(url, "0001")
        order = ["0003_api", "0004_roles", "0005_stream_indexes"]
        order += ["0006_least_privilege", "0007_optional_position"]
        for rev in (r for r in order if r in applied):
            with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
                if rev == "0004_roles" and "0003_api" not in applied:
                    # 0004_roles created the API's tables itself when 0003_api had not run.
                    script.get_revision("0003_api").module.upgrade()
                script.get_revision(rev).module.upgrade()
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
            for head in _heads(applied):
                conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
    finally:
        engine.dispose()


BRANCHED_STATES = _down_closed_sets()

# pg_dump --schema-only of a database migrated to all heads (0003_api, 0006_least_privilege,
# 0007_optional_position) by the branched graph, whose revisions imported the live tables.
BRANCHED_DUMP = Path(__file__).parent / "data" / "schema_0007_branched.sql"


def test_frozen_chain_builds_the_schema_the_branched_graph_built(
    new_database: Callable[..., str],
) -> None:
    url = new_database(migrate=False)
    db.migrate(url, "0007_optional_position")
    assert _schema(url) == _normalised(BRANCHED_DUMP.read_text())


def test_branched_states_cover_the_old_heads() -> None:
    # All heads of the last branched code, and the heads of each earlier release.
    assert frozenset(db.BRANCHED_GRAPH) in BRANCHED_STATES
    assert frozenset({"0001", "0003_api", "0004_roles", "0005_stream_indexes"}) in BRANCHED_STATES
    assert len(BRANCHED_STATES) == 10


@pytest.mark.parametrize(
    "applied", BRANCHED_STATES, ids=lambda s: "+".join(sorted(r[:4] for r in s))
)
def test_branched_database_upgrades_to_the_fresh_schema(
    new_database: Callable[..., str], applied: frozenset[str]
) -> None:
    fresh = new_database()
    old = new_database(migrate=False)
    _build_branched(old, applied)
    assert db.current_revisions(old) == _heads(applied)
    # Re-running a revision it has would fail (0006 creates a table and functions) or
    # undo a later one (0004's grants): the upgrade must run only what it lacks.
    db.migrate(old)
    assert db.current_revisions(old) == db.head_revisions()
    assert _schema(old) == _schema(fresh)
    db.migrate(old)
    assert db.current_revisions(old) == db.head_revisions()
