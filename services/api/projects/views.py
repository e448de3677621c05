"""Projects: list, get, create, update."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.credentials.views import revoke_credentials
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, documented, invalid, not_found
from services.api.params import CursorParam, Limit, decode_cursor, encode_cursor
from services.api.projects.models import (
    NO_NUL,
    Project,
    ProjectCreate,
    ProjectPage,
    ProjectUpdate,
    Status,
)
from services.core.tables import projects

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


def _out(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


StatusFilter = Annotated[
    list[Status] | None,
    Query(description="Only projects in this status (repeat for several); default all."),
]
TextFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Only projects whose id, name, enterprise, city or scenario contains "
        "this text (case-insensitive).",
    ),
]
SEARCHED = ("id", "name", "enterprise", "city", "scenario")


def _contains(text: str) -> sa.ColumnElement[bool]:
    """Substring match in any searched column; LIKE's wildcards in the text match themselves."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(*(projects.c[c].ilike(pattern, escape="\\") for c in SEARCHED))


@router.get("", response_model=ProjectPage, summary="Projects this key may see.")
async def list_projects(
    conn: Conn,
    key: Reader,
    limit: Limit = 100,
    cursor: CursorParam = None,
    status: StatusFilter = None,
    q: TextFilter = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor, (str,))
    query = sa.select(projects).order_by(projects.c.id).limit(limit + 1)
    if key.projects is not None:
        query = query.where(projects.c.id.in_(sorted(key.projects)))
    if status:
        query = query.where(projects.c.status.in_(sorted(set(status))))
    if q is not None:
        query = query.where(_contains(q))
    if after is not None:
        query = query.where(projects.c.id > after[0])
    rows = (await conn.execute(query)).all()
    items = [_out(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor([items[-1]["id"]]) if more else None}


async def _get(conn: Conn, project_id: str) -> dict[str, Any]:
    row = (await conn.execute(sa.select(projects).where(projects.c.id == project_id))).first()
    if row is None:
        raise not_found(f"project {project_id!r}")
    return _out(row)


@router.get("/{project_id}", response_model=Project)
async def get_project(project_id: str, conn: Conn, key: Reader) -> dict[str, Any]:
    if not key.sees(project_id):
        raise not_found(f"project {project_id!r}")
    return await _get(conn, project_id)


@router.post(
    "",
    response_model=Project,
    status_code=201,
    responses=documented(409),
    summary="Register a project (admin).",
)
async def create_project(
    request: Request, body: ProjectCreate, conn: TxConn, key: Admin
) -> dict[str, Any]:
    if not key.sees(body.id):
        raise ApiError(403, "forbidden", f"this key may not manage project {body.id!r}")
    try:
        row = (
            await conn.execute(projects.insert().values(**body.model_dump()).returning(*projects.c))
        ).one()
    except IntegrityError:
        await conn.rollback()
        raise ApiError(409, "conflict", f"project {body.id!r} already exists") from None
    out = _out(row)
    await audit.record(
        conn, acting(request, key), "project.create", "project", body.id, project=body.id, after=out
    )
    await conn.commit()
    return out


@router.patch("/{project_id}", response_model=Project, summary="Update (admin).")
async def update_project(
    request: Request, project_id: str, body: ProjectUpdate, conn: TxConn, key: Admin
) -> dict[str, Any]:
    if not key.sees(project_id):
        raise not_found(f"project {project_id!r}")
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for k, v in changes.items() if k in ("name", "status", "targets")):
        raise invalid("name, status and targets cannot be null")
    if not changes:
        return await _get(conn, project_id)
    before = (
        await conn.execute(sa.select(projects).where(projects.c.id == project_id).with_for_update())
    ).first()
    if before is None:
        raise not_found(f"project {project_id!r}")
    row = (
        await conn.execute(
            projects.update()
            .where(projects.c.id == project_id)
            .values(**changes, updated_at=sa.func.now())
            .returning(*projects.c)
        )
    ).first()
    if row is None:
        raise not_found(f"project {project_id!r}")
    out = _out(row)
    old = _out(before)
    await audit.record(
        conn,
        acting(request, key),
        "project.update",
        "project",
        project_id,
        project=project_id,
        before={k: old[k] for k in changes},
        after={k: out[k] for k in changes},
    )
    await conn.commit()
    return out


class ProjectDeleted(BaseModel):
    id: str
    rows_deleted: int
    credentials_revoked: list[int]


@router.delete(
    "/{project_id}",
    response_model=ProjectDeleted,
    responses=documented(409),
    summary="Delete an archived project with all its data; `confirm` repeats its id (admin).",
)
async def delete_project(
    request: Request,
    project_id: str,
    conn: TxConn,
    key: Admin,
    confirm: Annotated[
        str | None, Query(max_length=64, description="The project id again: deletes its data.")
    ] = None,
) -> dict[str, Any]:
    if not key.sees(project_id):
        raise not_found(f"project {project_id!r}")
    if confirm != project_id:
        raise invalid("confirm must repeat the project id: deleting a project deletes all its data")
    before = (
        await conn.execute(sa.select(projects).where(projects.c.id == project_id).with_for_update())
    ).first()
    if before is None:
        raise not_found(f"project {project_id!r}")
    if before.status != "archived":
        raise ApiError(
            409, "conflict", f"project {project_id!r} is {before.status}: archive it first"
        )
    revoked = await revoke_credentials(request, conn, key, project_id)
    deleted = (
        await conn.execute(sa.text("SELECT admin_purge(:p, NULL)"), {"p": project_id})
    ).scalar_one()
    await audit.record(
        conn,
        acting(request, key),
        "project.delete",
        "project",
        project_id,
        project=project_id,
        before=_out(before),
        after={"rows_deleted": int(deleted), "credentials_revoked": revoked},
    )
    await conn.commit()
    return {"id": project_id, "rows_deleted": int(deleted), "credentials_revoked": revoked}
