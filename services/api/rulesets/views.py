"""`/api/v1/rules`: the rule document as versions, each with who, when and the diff.

The API may not import the rules service (services never import each other), and a rule
document must be checked by the very parser that will run it. So a submitted document is
stored as a pending version; the rules service, which polls every two seconds, validates
it with the rule file's parser and marks it active (it then replaces the rules of the file
within seconds, in every replica) or rejected with the parser's precise message
(`rules v1:14:26: defaults.agv.battery_low.raise: expected a number, got 'high'`). The
submission waits for that verdict up to `wait_s` and answers 200 (active), 422 (rejected,
the message as is) or 202 (still pending: no rules service running).
"""

from __future__ import annotations

import asyncio
import difflib
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, ErrorBody, documented, not_found
from services.api.responses import JSONResponse
from services.core.contracts import ID_PATTERN, is_valid_id
from services.core.tables import devices, rule_backtests, rule_effective_requests, rule_versions

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])
POLL_S = 0.2
# What the rules service's database connections call themselves (services/rules/service.py;
# the API may not import it, so the name is spelled here too).
RULES_APPLICATION_NAME = "factory5g-rules"


class RulesSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(
        min_length=1,
        max_length=512 * 1024,
        pattern=r"^[^\x00]*$",
        description="The whole rule document, in the rule file's format (docs/rules.md).",
    )


def _out(row: Any, with_yaml: bool = True) -> dict[str, Any]:
    out = dict(row._mapping)
    if not with_yaml:
        out.pop("yaml", None)
        out.pop("diff", None)
    return out


@router.get("", summary="The active rule version and the history (read).")
async def get_rules(
    conn: Conn,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    c = rule_versions.c
    active = (
        await conn.execute(
            sa.select(rule_versions).where(c.status == "active").order_by(c.id.desc()).limit(1)
        )
    ).first()
    history = await conn.execute(sa.select(rule_versions).order_by(c.id.desc()).limit(limit))
    return {
        # null: the rules service runs its rule file (or the packaged defaults).
        "active": None if active is None else _out(active),
        "versions": [_out(r, with_yaml=False) for r in history],
    }


@router.get("/versions/{version_id}", summary="One rule version with its document and diff.")
async def get_version(version_id: int, conn: Conn, key: Reader) -> dict[str, Any]:
    if not 0 < version_id < 2**63:
        raise not_found(f"rule version {version_id}")
    row = (
        await conn.execute(sa.select(rule_versions).where(rule_versions.c.id == version_id))
    ).first()
    if row is None:
        raise not_found(f"rule version {version_id}")
    return _out(row)


@router.put(
    "",
    summary="Submit the rule document; answered once the rules service decided (admin).",
    responses={**documented(403, 422), 202: {"description": "Stored, not decided yet."}},
)
async def submit(
    request: Request,
    body: RulesSubmit,
    conn: TxConn,
    key: Admin,
    wait_s: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for the verdict.")
    ] = 10.0,
) -> Response:
    if key.projects is not None:
        raise ApiError(
            403,
            "forbidden",
            "the rule document covers every project: needs an admin key for every project",
        )
    c = rule_versions.c
    before = (
        await conn.execute(
            sa.select(c.id, c.yaml).where(c.status == "active").order_by(c.id.desc()).limit(1)
        )
    ).first()
    old = "" if before is None else before.yaml
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            body.yaml.splitlines(keepends=True),
            "active" if before is None else f"v{before.id}",
            "submitted",
        )
    )
    actor = acting(request, key)
    version = (
        await conn.execute(
            rule_versions.insert()
            .values(created_by=actor.name, yaml=body.yaml, diff=diff)
            .returning(c.id)
        )
    ).scalar_one()
    await audit.record(
        conn,
        actor,
        "rules.submit",
        "rules",
        str(version),
        before=None if before is None else {"version": before.id},
        after={"version": version, "diff": diff[:20000]},
    )
    await conn.commit()
    # No rules service connected (its pool names itself): nobody will decide soon.
    deciding = (
        await conn.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name = :n)"
            ),
            {"n": RULES_APPLICATION_NAME},
        )
    ).scalar()
    await conn.rollback()
    deadline = time.monotonic() + (wait_s if deciding else 0.0)
    while True:
        row = (await conn.execute(sa.select(rule_versions).where(c.id == version))).one()
        await conn.rollback()  # end the read transaction: see the rules service's verdict
        if row.status == "rejected":
            raise ApiError(422, "invalid", str(row.error))
        if row.status != "pending":
            return JSONResponse(_out(row), 200)
        if time.monotonic() >= deadline:
            return JSONResponse(_out(row), 202)
        await asyncio.sleep(POLL_S)


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1, max_length=512 * 1024, pattern=r"^[^\x00]*$")
    project: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    days: float = Field(1.0, gt=0, le=30, description="How far back the history is replayed.")


@router.post(
    "/backtest",
    summary="What a rule document would have raised over the last days, against the "
    "running rules (admin).",
    responses={**documented(422), 202: {"description": "Stored, not run yet."}},
)
async def backtest(
    request: Request,
    body: BacktestRequest,
    conn: TxConn,
    key: Admin,
    wait_s: Annotated[
        float, Query(ge=0, le=60, description="Seconds to wait for the result.")
    ] = 30.0,
) -> Response:
    if body.project is not None and not key.sees(body.project):
        raise not_found(f"project {body.project!r}")
    if body.project is None and key.projects is not None:
        raise ApiError(403, "forbidden", "name a project: this key does not see every project")
    c = rule_backtests.c
    now = datetime.now(UTC)
    job = (
        await conn.execute(
            rule_backtests.insert()
            .values(
                created_by=acting(request, key).name,
                yaml=body.yaml,
                project_id=body.project,
                range_start=now - timedelta(days=body.days),
                range_end=now,
            )
            .returning(c.id)
        )
    ).scalar_one()
    await conn.commit()
    deciding = (
        await conn.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name = :n)"
            ),
            {"n": RULES_APPLICATION_NAME},
        )
    ).scalar()
    await conn.rollback()
    deadline = time.monotonic() + (wait_s if deciding else 0.0)
    while True:
        row = (await conn.execute(sa.select(rule_backtests).where(c.id == job))).one()
        await conn.rollback()
        if row.status == "rejected":
            raise ApiError(422, "invalid", str(row.error))
        if row.status in ("done", "failed"):
            return JSONResponse(_out(row, with_yaml=False), 200)
        if time.monotonic() >= deadline:
            return JSONResponse(_out(row, with_yaml=False), 202)
        await asyncio.sleep(POLL_S)


@router.get("/backtests/{backtest_id}", summary="One backtest and its result (admin).")
async def get_backtest(backtest_id: int, conn: Conn, key: Admin) -> dict[str, Any]:
    if not 0 < backtest_id < 2**63:
        raise not_found(f"backtest {backtest_id}")
    row = (
        await conn.execute(sa.select(rule_backtests).where(rule_backtests.c.id == backtest_id))
    ).first()
    if (
        row is None
        or (row.project_id is None and key.projects is not None)
        or (row.project_id is not None and not key.sees(row.project_id))
    ):
        raise not_found(f"backtest {backtest_id}")
    return _out(row, with_yaml=False)


_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "No rules service is connected to the database, or it did not "
        "answer in time; the message says which.",
    }
}
Id = Annotated[str, Query(pattern=ID_PATTERN)]
# A connected rules service answers within its poll interval (0.5 s); this bounds a stall.
EFFECTIVE_WAIT_S = 10.0


@router.get(
    "/effective",
    summary="The effective rules of a device: every setting with the layer it came from (read).",
    responses={**documented(404, 422), **_UNAVAILABLE},
)
async def effective(
    conn: TxConn,
    key: Reader,
    project: Id,
    device: Id,
    kind: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="The topic kind, for a device not registered."),
    ] = None,
    profile: Annotated[
        list[str] | None,
        Query(
            max_length=8,
            description="Profiles (repeatable), for a device not registered or to see what "
            "other profiles would give it.",
        ),
    ] = None,
) -> Response:
    """Asked of the rules service through `rule_effective_requests`: only it parses rule
    documents and knows which one is in force (docs/rules.md, "Effective rules")."""
    if not key.sees(project):
        raise not_found(f"project {project!r}")
    for p in profile or ():
        if not is_valid_id(p):
            raise ApiError(422, "invalid", f"profile {p!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    d = devices.c
    row = (
        await conn.execute(
            sa.select(d.kind, d.status, d.profiles).where(
                d.project_id == project, d.device_id == device
            )
        )
    ).first()
    if profile:
        kinds, basis = list(dict.fromkeys(profile)), "query"
    elif kind is not None:
        kinds, basis = [kind], "query"
    elif row is None:
        raise not_found(
            f"device {device!r} in project {project!r}; for a device not seen yet, "
            "name its kind or profile"
        )
    elif row.status == "registered" and row.profiles:
        # As the rules service decides: a registered device's profiles, else its kind.
        kinds, basis = list(row.profiles), "profiles"
    else:
        kinds, basis = [row.kind], "kind"
    c = rule_effective_requests.c
    request_id = (
        await conn.execute(
            rule_effective_requests.insert()
            .values(project_id=project, device_id=device, kinds=kinds)
            .returning(c.id)
        )
    ).scalar_one()
    await conn.commit()
    try:
        deciding = (
            await conn.execute(
                sa.text(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = "
                    "current_database() AND application_name = :n)"
                ),
                {"n": RULES_APPLICATION_NAME},
            )
        ).scalar()
        await conn.rollback()
        if not deciding:
            raise ApiError(
                503,
                "unavailable",
                "no rules service is connected to the database: only it knows the rules in "
                "force; start `factory5g rules`",
            )
        deadline = time.monotonic() + EFFECTIVE_WAIT_S
        while True:
            answer = (
                await conn.execute(sa.select(c.status, c.result, c.error).where(c.id == request_id))
            ).one()
            await conn.rollback()  # end the read transaction: see the rules service's answer
            if answer.status == "done":
                break
            if answer.status == "failed":
                raise ApiError(503, "unavailable", f"the rules service failed: {answer.error}")
            if time.monotonic() >= deadline:
                raise ApiError(
                    503,
                    "unavailable",
                    f"the rules service did not answer within {EFFECTIVE_WAIT_S:g} s; try again",
                )
            await asyncio.sleep(POLL_S)
    finally:
        await conn.rollback()
        await conn.execute(rule_effective_requests.delete().where(c.id == request_id))
        await conn.commit()
    return JSONResponse(
        {
            "project": project,
            "device": device,
            "registered": row is not None and row.status == "registered",
            "basis": basis,
            "kinds": kinds,
            **answer.result,
        },
        200,
    )
