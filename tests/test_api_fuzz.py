"""Schema-based fuzzing of the whole OpenAPI document, in process, on a throwaway database.

Schemathesis generates valid and invalid requests for every operation from the published
schema (the live stream included) and checks each response: no server error, and the
status code, content type, headers and body all as the schema promises; unsupported
methods must get 405 with an `Allow` that names what the path serves, and requests with
bad credentials 401. It runs twice: with a read key of one project (most writes then end in
403 or 404, which must be documented too) and with an all-projects admin key that reaches
every handler. The failed-authentication limit is switched off here (`ignored_auth` sends
made-up keys on purpose, from one address); tests/test_security_api.py attacks it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from f5gdev.devstack.servers import Mosquitto
from services.api.app import create_app
from services.core.db import sync_url
from tests.conftest import make_settings
from tests.test_api_support import make_keys, seed_small

EXAMPLES = 20  # per operation and key: about 17 operations x 2 keys stay well under a minute
# Every built-in response check but positive data acceptance: schema-valid input may still
# be refused (a cursor from another route, an end before its start), as documented 422s the
# schema cannot express.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    ignored_auth,
]


@pytest.fixture(scope="module")
async def fuzz_db(new_database: Callable[..., str]) -> tuple[str, dict[str, str]]:
    url = new_database()
    await seed_small(url)
    k = await make_keys(url)
    return url, {"read": k.read_p1, "admin": k.admin}


@pytest.fixture(scope="module")
def fuzz_env(
    fuzz_db: tuple[str, dict[str, str]], broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    url, tokens = fuzz_db
    # A broker account directory of its own, so the credential routes run to the end
    # (no broker serves it: changes are kept for its next start).
    accounts = tmp_path_factory.mktemp("fuzz-broker-accounts")
    settings = make_settings(
        url,
        broker.port,
        api={"rollup_interval_s": 0, "key_cache_s": 0, "auth_failures_per_s": 0,
             "live_max_s": 0.2, "broker_auth_dir": str(accounts)},
    )  # fmt: skip
    app = create_app(settings)
    # One lifespan (engine, background tasks) for the whole run.
    with asgi.get_client(app) as http:  # type: ignore[arg-type]
        yield schemathesis.openapi.from_asgi("/openapi.json", app), http, tokens
    # The effective-rules route is answered by a rules service; see _rules_service_for.


@contextmanager
def _rules_service_for(path: str, url: str, port: int, tmp: Path) -> Iterator[None]:
    """A real rules service while the operation that asks it runs, so the effective-rules
    route reaches its answer (without one it answers 503 by design:
    tests/test_admin_rules_effective.py). Only then: with one connected, the rule-document
    and backtest routes wait for verdicts longer than the fuzzer's read timeout."""
    if path != "/api/v1/rules/effective":
        yield
        return
    proc = _start_rules_service(url, port, tmp)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def _start_rules_service(url: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        F5G_DATABASE__URL=url,
        F5G_MQTT__HOST="127.0.0.1",
        F5G_MQTT__PORT=str(port),
        F5G_RULES__METRICS_PORT="0",
        F5G_RULES__CLIENT_ID=f"fuzz-rules-{os.getpid()}",
    )
    with (tmp / "rules.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "rules"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the rules service exited: {(tmp / 'rules.log').read_text()}")
        engine = sa.create_engine(sync_url(url))
        try:
            with engine.connect() as conn:
                connected = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND application_name = 'factory5g-rules'"
                    )
                ).scalar()
        finally:
            engine.dispose()
        if connected:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the rules service did not connect to the database within 60 s")


@pytest.mark.parametrize("who", ["read", "admin"])
def test_no_server_errors_and_responses_match_the_schema(
    fuzz_env: tuple[Any, Any, dict[str, str]],
    fuzz_db: tuple[str, dict[str, str]],
    broker: Mosquitto,
    tmp_path: Path,
    who: str,
) -> None:
    api, http, tokens = fuzz_env
    url, _ = fuzz_db
    headers = {"Authorization": f"Bearer {tokens[who]}"}
    operations = [result.ok() for result in api.get_all_operations()]
    paths = {op.path for op in operations}
    assert len(operations) >= 17
    assert "/api/v1/live" in paths
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(session=http, headers=headers, checks=CHECKS)

        with _rules_service_for(operation.path, url, broker.port, tmp_path):
            run()
