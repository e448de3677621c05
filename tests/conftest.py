"""Shared fixtures: real Mosquitto and PostgreSQL + TimescaleDB, private to this test run.

The servers are the same classes the local stack uses, started in a temporary directory on
free loopback ports, so tests never touch a developer's `.stack/` and can stop, restart or
break their own servers. A missing server binary is a failure, never a skip.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from f5gdev.devstack.servers import Mosquitto, Postgres, free_port
from services.core import db
from services.core.settings import Settings, load_settings


@pytest.fixture(scope="session")
def stack_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="f5g-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(stack_tmp: Path) -> Iterator[Postgres]:
    server = Postgres(stack_tmp / "postgres", port=free_port(), durable=False)
    server.start()
    yield server
    server.stop(mode="immediate")


@pytest.fixture(scope="session")
def broker(stack_tmp: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(stack_tmp / "mosquitto", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def new_broker(stack_tmp: Path) -> Iterator[Callable[[], Mosquitto]]:
    """A broker of the test's own, for tests that restart or break it."""
    started: list[Mosquitto] = []

    def make() -> Mosquitto:
        server = Mosquitto(stack_tmp / f"mosquitto-{uuid.uuid4().hex[:8]}", port=free_port())
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def new_database(pg: Postgres) -> Callable[[], str]:
    """Create an empty, migrated database and return its URL."""

    def make(migrate: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        pg.ensure_database(name)
        url = pg.url_for(name)
        if migrate:
            db.migrate(url)
        return url

    return make


@pytest.fixture(scope="module")
def database_url(new_database: Callable[..., str]) -> str:
    """A migrated database shared by the tests of one module."""
    return new_database()


def make_settings(database_url: str, mqtt_port: int, **sections: dict[str, Any]) -> Settings:
    """Settings pointing at the test servers; `sections` override per-section keys."""
    values: dict[str, Any] = {
        "database": {"url": database_url},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "ingest": {"metrics_port": 0},
        "rules": {"metrics_port": 0},
    }
    for section, overrides in sections.items():
        values.setdefault(section, {}).update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(database_url: str, broker: Mosquitto) -> Settings:
    return make_settings(database_url, broker.port)
