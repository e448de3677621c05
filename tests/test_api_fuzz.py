"""Schema-based fuzzing of the whole OpenAPI document, in process, on the real database.

Schemathesis generates valid and invalid requests for every operation from the published
schema; no request may produce a server error, and responses must match what the schema
promises (status codes, content types, bodies). Requests carry an all-projects admin key
so they reach the handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.python import asgi

from services.api.app import create_app
from tests.test_api_support import api_settings, make_keys, seed_small

EXAMPLES = 50


@pytest.fixture(scope="module")
async def fuzz_db(new_database: Callable[..., str]) -> tuple[str, str]:
    url = new_database()
    plan = await seed_small(url)
    del plan
    k = await make_keys(url)
    return url, k.admin


@pytest.fixture(scope="module")
def fuzz_env(fuzz_db: tuple[str, str]) -> Iterator[tuple[Any, Any, str]]:
    url, token = fuzz_db
    app = create_app(api_settings(url))
    # One lifespan (engine, background tasks) for the whole run.
    with asgi.get_client(app) as http:  # type: ignore[arg-type]
        yield schemathesis.openapi.from_asgi("/openapi.json", app), http, token


def test_no_server_errors_and_responses_match_the_schema(
    fuzz_env: tuple[Any, Any, str],
) -> None:
    api, http, token = fuzz_env
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            # Schema-valid input may still be refused (a forged cursor, an empty range, too
            # many points): those are 422s the schema cannot express, not defects.
            case.call_and_validate(
                session=http, headers=headers, excluded_checks=[positive_data_acceptance]
            )

        run()
