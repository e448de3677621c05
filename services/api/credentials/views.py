"""`/api/v1/credentials`: broker accounts of every kind, issued, rotated, revoked (admin).

The broker side is `services.security.broker_auth`, the one implementation the
`factory5g devices` command uses too. Where the API runs beside the broker (the local
stack) it shares the broker's account directory (`api.broker_auth_dir`): the registry
there is the persistent copy and each change is applied live through `$CONTROL`. Where it
does not (Kubernetes) it applies through `$CONTROL` alone with the broker's admin account
(`api.broker_admin_password`), and the broker's dynamic-security file is the copy.

The database keeps what exists and for whom (`broker_credentials`), never a password. Each
act runs in one transaction with its audit row: the row is written, the broker changed,
then the transaction committed; a broker that refuses leaves the database unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin
from services.api.auth.keys import ApiKey
from services.api.credentials.models import (
    AgvCreate,
    AlarmReaderCreate,
    Credential,
    CredentialCreate,
    CredentialPage,
    Issued,
    NativeCreate,
    SparkplugCreate,
)
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, ErrorBody, documented, invalid, not_found
from services.api.params import CursorParam, Limit, decode_cursor, encode_cursor
from services.api.scope import project_filter
from services.core.settings import Settings
from services.core.tables import broker_credentials
from services.security import broker_auth as ba

router = APIRouter(prefix="/api/v1/credentials", tags=["credentials"])
_MAX_ID = 2**63 - 1
# VDA 5050 topics of the deployment: `{interface}/v2/...`, as ingest's adapter reads them.
VDA5050_VERSION = "v2"

Backend = ba.BrokerAuth | ba.BrokerControl
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **documented(409),
    502: {"model": ErrorBody, "description": "The broker refused the change."},
    503: {
        "model": ErrorBody,
        "description": "No broker reachable, or credentials not configured for this API.",
    },
}


def backend(settings: Settings) -> Backend | None:
    """Where credentials go: the shared account directory, else `$CONTROL` alone."""
    api = settings.api
    if api.broker_auth_dir is not None:
        return ba.BrokerAuth(api.broker_auth_dir)
    if api.broker_admin_password is not None:
        m = settings.mqtt
        return ba.BrokerControl(
            m.host,
            m.port,
            api.broker_admin_password.get_secret_value(),
            ca_file=m.ca_file if m.tls else None,
        )
    return None


def _backend(request: Request) -> Backend:
    found = backend(request.app.state.settings)
    if found is None:
        raise ApiError(
            503,
            "unavailable",
            "broker credentials are not configured: set F5G_API__BROKER_AUTH_DIR (shared "
            "account directory) or F5G_API__BROKER_ADMIN_PASSWORD (through $CONTROL)",
        )
    return found


def _vda_project(settings: Settings, manufacturer: str, serial: str) -> str:
    """The project ingest files this AGV under (services/protocols/adapters/vda5050.py)."""
    i = settings.ingest
    return (
        i.vda5050_projects.get(f"{manufacturer}/{serial}")
        or i.vda5050_projects.get(manufacturer)
        or i.vda5050_default_project
    )


def _account(body: Any, settings: Settings) -> tuple[ba.Account, str]:
    """The account a request asks for and its project; a bad name is a 422."""
    try:
        if isinstance(body, NativeCreate):
            return ba.check_device_name(body.project, body.kind, body.device), body.project
        if isinstance(body, SparkplugCreate):
            return ba.sparkplug_node(body.group, body.node), body.group
        if isinstance(body, AgvCreate):
            account = ba.agv(
                settings.ingest.vda5050_interface,
                VDA5050_VERSION,
                body.manufacturer,
                body.serial,
            )
            return account, _vda_project(settings, body.manufacturer, body.serial)
        assert isinstance(body, AlarmReaderCreate)
        return ba.alarm_reader(body.project, body.name), body.project
    except ba.ProvisionError as exc:
        raise invalid(str(exc)) from None


def _params(account: ba.Account) -> dict[str, str]:
    if isinstance(account, ba.DeviceAccount):
        return {"project": account.project, "kind": account.kind, "device": account.device}
    return {k: v for k, v in account.describe().items() if k != "type"}


def _type(account: ba.Account) -> str:
    return "native" if isinstance(account, ba.DeviceAccount) else account.type


def _stored_account(row: Any) -> ba.Account:
    params = dict(row.params)
    if row.type == "native":
        return ba.DeviceAccount(params["project"], params["kind"], params["device"])
    return ba.account_from({"type": row.type, **params})


def _grants(account: ba.Account) -> dict[str, list[str]]:
    acls = ba.account_acls(account)
    return {
        "publish": [a["topic"] for a in acls if a["acltype"] == "publishClientSend"],
        "subscribe": [a["topic"] for a in acls if a["acltype"] == "subscribePattern"],
    }


def _out(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["client_id"] = _stored_account(row).client_id
    return out


async def _apply(conn: AsyncConnection, call: Any, *args: Any) -> Any:
    """Run a broker change (blocking: file lock, MQTT round trip) off the event loop; a
    failure rolls the database back and answers what went wrong."""
    try:
        return await asyncio.to_thread(call, *args)
    except ba.ProvisionError as exc:
        await conn.rollback()
        raise invalid(str(exc)) from None
    except ba.BrokerUnavailableError as exc:
        await conn.rollback()
        raise ApiError(503, "unavailable", f"broker unreachable: {exc}") from None
    except ba.BrokerRefusedError as exc:
        await conn.rollback()
        raise ApiError(502, "broker_refused", str(exc)) from None


def _manages(key: ApiKey, project: str) -> None:
    if not key.sees(project):
        raise ApiError(403, "forbidden", f"this key may not manage project {project!r}")


async def _live_row(conn: AsyncConnection, key: ApiKey, credential_id: int) -> Any:
    if not 0 < credential_id <= _MAX_ID:
        raise not_found(f"credential {credential_id}")
    row = (
        await conn.execute(
            sa.select(broker_credentials)
            .where(broker_credentials.c.id == credential_id)
            .with_for_update()
        )
    ).first()
    if row is None or not key.sees(row.project_id):
        raise not_found(f"credential {credential_id}")
    if row.revoked_at is not None:
        raise ApiError(409, "conflict", f"credential {credential_id} is revoked")
    return row


@router.post(
    "",
    response_model=Issued,
    status_code=201,
    responses=_RESPONSES,
    summary="Issue a broker credential; its password is in this answer only (admin).",
)
async def issue(
    request: Request, body: CredentialCreate, conn: TxConn, key: Admin
) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    account, project = _account(body, settings)
    _manages(key, project)
    auth = _backend(request)
    taken = (
        await conn.execute(
            sa.select(broker_credentials.c.id).where(
                broker_credentials.c.username == account.username,
                broker_credentials.c.revoked_at.is_(None),
            )
        )
    ).first()
    if taken is not None:
        raise ApiError(
            409,
            "conflict",
            f"{account.username!r} has a live credential ({taken.id}): rotate or revoke it",
        )
    actor = acting(request, key)
    row = (
        await conn.execute(
            broker_credentials.insert()
            .values(
                username=account.username,
                type=_type(account),
                project_id=project,
                params=_params(account),
                created_by=actor.name,
            )
            .returning(*broker_credentials.c)
        )
    ).one()
    out = _out(row)
    await audit.record(
        conn, actor, "credential.issue", "credential", str(row.id), project=project, after=out
    )
    creds = await _apply(conn, auth.provision, account)
    await conn.commit()
    return _issued(out, account, creds)


def _issued(out: dict[str, Any], account: ba.Account, creds: ba.Credentials) -> dict[str, Any]:
    return {
        "credential": out,
        "username": creds.username,
        "password": creds.password,
        "client_id": account.client_id,
        "grants": _grants(account),
        "live": creds.live,
    }


@router.post(
    "/{credential_id}/rotate",
    response_model=Issued,
    responses=_RESPONSES,
    summary="New password; the old one is refused and its sessions closed (admin).",
)
async def rotate(request: Request, credential_id: int, conn: TxConn, key: Admin) -> dict[str, Any]:
    auth = _backend(request)
    row = await _live_row(conn, key, credential_id)
    account = _stored_account(row)
    after = (
        await conn.execute(
            broker_credentials.update()
            .where(broker_credentials.c.id == credential_id)
            .values(rotated_at=sa.func.now())
            .returning(*broker_credentials.c)
        )
    ).one()
    await audit.record(
        conn,
        acting(request, key),
        "credential.rotate",
        "credential",
        str(credential_id),
        project=row.project_id,
        before={"rotated_at": row.rotated_at},
        after={"rotated_at": after.rotated_at},
    )
    creds = await _apply(conn, auth.provision, account)
    await conn.commit()
    return _issued(_out(after), account, creds)


@router.post(
    "/{credential_id}/revoke",
    response_model=Credential,
    responses=_RESPONSES,
    summary="Revoke for good: the broker refuses it and closes its sessions (admin).",
)
async def revoke(request: Request, credential_id: int, conn: TxConn, key: Admin) -> dict[str, Any]:
    auth = _backend(request)
    row = await _live_row(conn, key, credential_id)
    after = (
        await conn.execute(
            broker_credentials.update()
            .where(broker_credentials.c.id == credential_id)
            .values(revoked_at=sa.func.now())
            .returning(*broker_credentials.c)
        )
    ).one()
    await audit.record(
        conn,
        acting(request, key),
        "credential.revoke",
        "credential",
        str(credential_id),
        project=row.project_id,
        before={"revoked_at": None},
        after={"revoked_at": after.revoked_at},
    )
    await _apply(conn, _revoke_on, auth, row.username)
    await conn.commit()
    return _out(after)


def _revoke_on(auth: Backend, username: str) -> None:
    if isinstance(auth, ba.BrokerAuth):
        # Removed from the registry by hand: still make sure the broker has no such account.
        auth.revoke(username, missing_ok=True)
    else:
        auth.revoke(username)


@router.get("", response_model=CredentialPage, summary="Broker credentials, newest first (admin).")
async def list_credentials(
    conn: Conn,
    key: Admin,
    project: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[Literal["native", "sparkplug", "vda5050", "alarms"] | None, Query()] = None,
    revoked: Annotated[bool, Query(description="Include revoked credentials.")] = False,
    limit: Limit = 100,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor, (int,))
    visible = project_filter(key, project)
    c = broker_credentials.c
    q = sa.select(broker_credentials).order_by(c.id.desc()).limit(limit + 1)
    if visible is not None:
        q = q.where(c.project_id.in_(visible))
    if type is not None:
        q = q.where(c.type == type)
    if not revoked:
        q = q.where(c.revoked_at.is_(None))
    if after is not None:
        q = q.where(c.id < after[0])
    rows = (await conn.execute(q)).all()
    items = [_out(r) for r in rows[:limit]]
    nxt = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


@router.get("/{credential_id}", response_model=Credential)
async def get_credential(credential_id: int, conn: Conn, key: Admin) -> dict[str, Any]:
    if not 0 < credential_id <= _MAX_ID:
        raise not_found(f"credential {credential_id}")
    row = (
        await conn.execute(
            sa.select(broker_credentials).where(broker_credentials.c.id == credential_id)
        )
    ).first()
    if row is None or not key.sees(row.project_id):
        raise not_found(f"credential {credential_id}")
    return _out(row)


async def revoke_credentials(
    request: Request,
    conn: AsyncConnection,
    key: ApiKey,
    project: str,
    device: str | None = None,
) -> list[int]:
    """Revoke every live credential of a device (its native account, its Sparkplug edge
    node, its VDA 5050 account), or with no device of the whole project, inside the
    caller's transaction (retire and delete call this). Nothing to revoke needs no broker;
    a broker that fails fails the act."""
    c = broker_credentials.c
    q = sa.select(broker_credentials).where(c.project_id == project, c.revoked_at.is_(None))
    if device is not None:
        q = q.where(
            sa.or_(
                sa.and_(c.type == "native", c.params["device"].astext == device),
                sa.and_(c.type == "sparkplug", c.params["node"].astext == device),
                sa.and_(
                    c.type == "vda5050",
                    c.params["manufacturer"].astext + "." + c.params["serial"].astext == device,
                ),
            )
        )
    rows = (await conn.execute(q.order_by(c.id).with_for_update())).all()
    if not rows:
        return []
    auth = _backend(request)
    actor = acting(request, key)
    for row in rows:
        await conn.execute(
            broker_credentials.update().where(c.id == row.id).values(revoked_at=sa.func.now())
        )
        await audit.record(
            conn,
            actor,
            "credential.revoke",
            "credential",
            str(row.id),
            project=project,
            before={"revoked_at": None},
            after={"revoked_at": "with its device or project"},
        )
        await _apply(conn, _revoke_on, auth, row.username)
    return [int(r.id) for r in rows]
