"""Development commands of `factory5g`: the local stack, the whole platform in one process
tree, benchmarks, seeding and dashboard screenshots.

They live beside the services, not in them: the runtime package (`pip install factory5g`)
does not ship this package, and `services.cli` registers these commands only when it is
importable (a checkout set up by `make bootstrap`, which puts it on the venv's path).
Nothing under `services` other than the CLI may import it (the import contract in
pyproject.toml says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer

from f5gdev.dashboard.cli import dashboard_app
from f5gdev.devstack.stack import use_local_passfile
from services.core.runtime import run_async
from services.core.settings import Settings, load_settings

__all__ = ["register", "use_local_passfile"]


def register(
    app: typer.Typer,
    db_app: typer.Typer,
    settings: Callable[[], Settings],
) -> None:
    """Add the development commands to the program and its `db` group."""
    stack_app = typer.Typer(help="Local stack: real Mosquitto and PostgreSQL + TimescaleDB.")
    app.add_typer(stack_app, name="stack")
    stack_app.command("up")(stack_up)
    stack_app.command("down")(stack_down)
    stack_app.command("status")(stack_status)
    stack_app.command("certs")(stack_certs)
    db_app.command("roles")(db_roles)
    app.add_typer(dashboard_app, name="dashboard")
    app.command()(seed)
    dev_app = typer.Typer(help="Development helpers.")
    app.add_typer(dev_app, name="dev")
    dev_app.command("mailbox")(dev_mailbox)

    @app.command()
    def up(
        simulate: Annotated[bool, typer.Option(help="Also run the simulated factory.")] = True,
    ) -> None:
        """The whole platform: local stack, migrations, ingest, rules, api and a simulated
        factory."""
        from f5gdev.devstack.platform import run_platform

        run_platform(settings(), with_simulator=simulate)

    app.command(
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            "help_option_names": [],
        }
    )(bench)


def dev_mailbox(
    limit: Annotated[int, typer.Option(help="Show the last N entries.")] = 20,
) -> None:
    """List the mails and webhook calls the local mailbox received (`factory5g up`)."""
    from f5gdev.devstack.receivers import MAIL_DIR, WEBHOOK_LOG, read_mailbox
    from f5gdev.devstack.stack import stack_dir

    entries = read_mailbox()
    if not entries:
        typer.echo(f"nothing received yet ({stack_dir() / MAIL_DIR}, {stack_dir() / WEBHOOK_LOG})")
    for entry in entries[-limit:]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        typer.echo(f"{at}  {entry.kind:7}  {entry.summary}")


def stack_up(
    ha: bool = typer.Option(
        False,
        "--ha",
        help="Also start the HA database: a 3-member etcd and two PostgreSQL + TimescaleDB "
        "members under Patroni with a synchronous standby (docs/operations.md).",
    ),
) -> None:
    """Install what is missing, then start Mosquitto and PostgreSQL + TimescaleDB."""
    from f5gdev.devstack.stack import LocalStack

    stack = LocalStack.default()
    stack.up()
    if ha:
        stack.up_ha()
    for name, state in stack.status().items():
        typer.echo(f"{name:10} {state}")


def stack_down() -> None:
    """Stop the local servers; data stays under the stack directory."""
    from f5gdev.devstack.stack import LocalStack

    LocalStack.default().down()


def stack_status() -> None:
    """Say whether the local servers run, and where."""
    from f5gdev.devstack.stack import LocalStack

    for name, state in LocalStack.default().status().items():
        typer.echo(f"{name:10} {state}")


def stack_certs() -> None:
    """Create the development CA and the broker's server certificate (TLS on port 8883
    from the next `factory5g stack up`)."""
    from f5gdev.devstack.stack import LocalStack
    from services.security.certs import DevCA

    ca = DevCA(LocalStack.default().tls_dir)
    ca.ensure()
    typer.echo(f"CA certificate: {ca.ca_cert}\nrestart the stack to open the TLS listener")


def db_roles() -> None:
    """Create or refresh the services' database login users (local stack)."""
    from f5gdev.devstack.stack import LocalStack
    from services.core import db

    stack = LocalStack.default()
    db.migrate(stack.postgres.url)
    stack.ensure_db_users()
    typer.echo(f"login users in {stack.db_users.file}")


def bench(ctx: typer.Context) -> None:
    """Benchmarks: `factory5g bench <scenario> [options]`; `factory5g bench --help` lists them."""
    from loadtests.cli import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


def seed(
    days: Annotated[float, typer.Option(help="Days of history ending now.")] = 30,
    devices: Annotated[int, typer.Option(help="Devices (stations, AGVs, CPEs, machines).")] = 200,
    projects: Annotated[int, typer.Option(help="Projects the devices are spread over.")] = 4,
    rows_per_day: Annotated[
        int, typer.Option(help="Rows per device per day (8640 = one every 10 s).")
    ] = 8640,
    rollups: Annotated[bool, typer.Option(help="Bring rollups current afterwards.")] = True,
    random_seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
) -> None:
    """Seed synthetic history via binary COPY: `--days 30 --devices 200` is ~52 M rows."""
    from f5gdev.seed.generate import SeedPlan, default_end, describe
    from f5gdev.seed.generate import seed as do_seed
    from services.api.app import make_engine
    from services.api.rollups import maintain

    settings = load_settings()
    plan = SeedPlan(projects, devices, days, rows_per_day, default_end())

    async def go() -> None:
        started = time.perf_counter()
        result = await do_seed(settings.database.url, plan, random_seed)
        total = sum(result.values())
        took = time.perf_counter() - started
        typer.echo(
            f"seeded {total:,} rows in {took:.1f} s ({total / took:,.0f} rows/s): "
            f"{describe(result)}"
        )
        if rollups:
            engine = make_engine(settings)
            try:
                started = time.perf_counter()
                runs = await maintain.catch_up(
                    engine, gap_floor_s=settings.availability.gap_floor_s
                )
                typer.echo(
                    f"rollups built in {time.perf_counter() - started:.1f} s ({runs} passes)"
                )
            finally:
                await engine.dispose()

    run_async(go(), settings.log_level)
