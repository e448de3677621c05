"""`factory5g keys|rollup`: API key management and rollup maintenance (the `seed` command
of the development tooling lives in f5gdev.cli)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from services.core.runtime import run_async
from services.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

keys_app = typer.Typer(help="API keys: create, revoke, list. Tokens are shown once.")
# The key commands print what people and scripts read (tokens, the key list); library INFO
# logs (Alembic announces its plugins on import) would be noise there, warnings still show.
KEYS_LOG_LEVEL = "WARNING"


def _engine(settings: Settings) -> AsyncEngine:
    from services.api.app import make_engine

    return make_engine(settings)


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="read | operate | admin")] = "read",
    project: Annotated[
        list[str] | None, typer.Option(help="A project the key may see (repeat); none = all.")
    ] = None,
    name: Annotated[
        str, typer.Option(help="Who or what uses the key (shown as alarm actor).")
    ] = "",
) -> None:
    """Create a key and print its token (store it now: only its hash is kept)."""
    from services.api.auth import keys

    if scope not in keys.SCOPES:
        typer.echo(f"--scope must be one of {', '.join(keys.SCOPES)}", err=True)
        raise typer.Exit(2)

    async def go() -> str:
        engine = _engine(load_settings())
        try:
            async with engine.begin() as conn:
                token, key = await keys.create(conn, name or f"{scope}-key", scope, project)
            return f"{token}\nprefix {key.prefix}  scope {key.scope}  projects " + (
                ",".join(sorted(key.projects)) if key.projects is not None else "(all)"
            )
        finally:
            await engine.dispose()

    typer.echo(run_async(go(), KEYS_LOG_LEVEL))


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix.")]) -> None:
    """Revoke a key; API processes stop accepting it within api.key_cache_s seconds."""
    from services.api.auth import keys

    async def go() -> bool:
        engine = _engine(load_settings())
        try:
            async with engine.begin() as conn:
                return await keys.revoke(conn, prefix)
        finally:
            await engine.dispose()

    if not run_async(go(), KEYS_LOG_LEVEL):
        typer.echo(f"no live key with prefix {prefix!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {prefix}")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefix, name, scope, projects, created, revoked); never the tokens."""
    from services.api.auth import keys

    async def go() -> list[keys.ApiKey]:
        engine = _engine(load_settings())
        try:
            async with engine.connect() as conn:
                return await keys.list_keys(conn)
        finally:
            await engine.dispose()

    for k in run_async(go(), KEYS_LOG_LEVEL):
        projects = ",".join(sorted(k.projects)) if k.projects is not None else "(all)"
        revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live"
        created = f"{k.created_at:%Y-%m-%d %H:%M}" if k.created_at else "-"
        typer.echo(f"{k.prefix}  {k.scope:8} {k.name:20} {projects:20} {created}  {revoked}")


def rollup(
    once: Annotated[bool, typer.Option(help="Catch up once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 30.0,
    since: Annotated[
        datetime | None, typer.Option(help="First rebuild everything from this time (late data).")
    ] = None,
) -> None:
    """Keep the per-minute and per-hour rollups current (the API does this too unless
    F5G_API__ROLLUP_INTERVAL_S=0); idempotent, so several may run."""
    from services.api.report import ledger
    from services.api.rollups import maintain

    async def go() -> None:
        settings = load_settings()
        engine = _engine(settings)
        try:
            if since is not None:
                await maintain.rewind(engine, since if since.tzinfo else since.replace(tzinfo=UTC))
            while True:
                started = time.perf_counter()
                runs = await maintain.catch_up(
                    engine, gap_floor_s=settings.availability.gap_floor_s
                )
                runs += await ledger.catch_up(engine)
                typer.echo(
                    f"rollups current after {runs} pass(es), {time.perf_counter() - started:.1f} s"
                )
                if once:
                    return
                await asyncio.sleep(interval)
        finally:
            await engine.dispose()

    run_async(go())


def retention(
    once: Annotated[bool, typer.Option(help="One pass and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 3600.0,
) -> None:
    """Apply the retention policies (set through /api/v1/retention): drop raw chunks and
    rollup buckets past them, never before the rollups have them (the API does this too
    unless F5G_API__RETENTION_INTERVAL_S=0)."""
    from services.api.retention import maintain

    async def go() -> None:
        engine = _engine(load_settings())
        try:
            while True:
                for o in await maintain.run(engine):
                    held = f" (held back by {o.held_back_by})" if o.held_back_by else ""
                    typer.echo(f"{o.target}: dropped {o.dropped} before {o.cutoff}{held}")
                if once:
                    return
                await asyncio.sleep(interval)
        finally:
            await engine.dispose()

    run_async(go())
