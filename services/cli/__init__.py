"""`factory5g` command line: every service and tool is a subcommand of one program."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Annotated

import typer

from services.core.settings import (
    ApiSettings,
    CommandsSettings,
    ConfigError,
    DatabaseSettings,
    IngestSettings,
    MqttSettings,
    NotifySettings,
    RulesSettings,
    Settings,
    SimulatorSettings,
    describe,
    load_settings,
)

app = typer.Typer(
    name="factory5g",
    help="Industrial 5G IoT data platform: MQTT device streams into TimescaleDB, rules, "
    "alarms, KPIs and a dashboard. Settings come from F5G_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")

_COMMON = describe(DatabaseSettings, "database") + "\n" + describe(MqttSettings, "mqtt")


def _help(intro: str, *sections: tuple[type, str]) -> str:
    body = "\n".join(describe(cls, prefix) for cls, prefix in sections)  # type: ignore[arg-type]
    return f"{intro}\n\nSettings (environment, default, meaning):\n\n\b\n{body}\n{_COMMON}"


def _dev_tooling() -> ModuleType | None:
    """The development commands (f5gdev), or None in a runtime install without them.

    Only the absence of the package itself counts: a broken import inside it still fails
    loudly rather than silently hiding the commands."""
    try:
        import f5gdev.cli
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == "f5gdev" or exc.name.startswith("f5gdev.")):
            return None
        raise
    return f5gdev.cli


_DEV = _dev_tooling()


def _settings() -> Settings:
    if _DEV is not None:
        _DEV.use_local_passfile()
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Create or migrate the schema (idempotent)."""
    from services.core import db

    settings = _settings()
    db.migrate(settings.database.url, revision)
    info = db.timescale_info(settings.database.url)
    typer.echo(
        f"schema at {', '.join(sorted(db.current_revisions(settings.database.url)))}; "
        f"TimescaleDB {info.version} ({info.license} license)"
    )


@db_app.command("status")
def db_status() -> None:
    """Show the current and the latest schema revision."""
    from services.core import db

    settings = _settings()
    current = db.current_revisions(settings.database.url)
    heads = db.head_revisions()
    typer.echo(f"current: {', '.join(sorted(current)) or '(empty)'}")
    typer.echo(f"latest:  {', '.join(sorted(heads))}")
    if current != heads:
        raise typer.Exit(1)


@app.command(
    help=_help("Ingest: MQTT device streams into TimescaleDB.", (IngestSettings, "ingest"))
)
def ingest(
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Ingest processes on this host, each its own session and shard of the "
            "devices (default: ingest.processes, 1).",
        ),
    ] = None,
) -> None:
    from services.ingest.service import run

    settings = _settings()
    if processes is not None:
        ingest_settings = settings.ingest.model_copy(update={"processes": processes})
        settings = settings.model_copy(update={"ingest": ingest_settings})
    run(settings)


@app.command(
    help=_help(
        "Commander: sends queued commands to devices and records their outcome.",
        (CommandsSettings, "commands"),
    )
)
def commands() -> None:
    from services.commands.service import run

    run(_settings())


rules_app = typer.Typer(
    help=_help(
        "Rules: anomalies into alarms with a lifecycle. Without a subcommand, runs the service.",
        (RulesSettings, "rules"),
    ),
    invoke_without_command=True,
)
app.add_typer(rules_app, name="rules")


@rules_app.callback()
def rules(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from services.rules.service import run

    run(_settings())


@rules_app.command("replay")
def rules_replay(
    from_: Annotated[
        str, typer.Option("--from", help="Start: ISO 8601 (UTC if no offset) or an age like 2h.")
    ],
    to: Annotated[str, typer.Option("--to", help="End (exclusive), same forms or `now`.")] = "now",
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    rules_file: Annotated[
        str | None, typer.Option(help="Rule file to try (default: F5G_RULES__RULES_FILE).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Transitions as JSON lines.")] = False,
) -> None:
    """Evaluate the rules over stored history without storing or publishing anything."""
    from services.rules.replay import run_replay

    raise typer.Exit(run_replay(_settings(), from_, to, project, rules_file, json))


@app.command(
    help=_help(
        "Notifier: alarm transitions to e-mail, webhooks and chat robots, with escalation.",
        (NotifySettings, "notify"),
    )
)
def notify() -> None:
    from services.notify.service import run

    run(_settings())


@app.command(help=_help("API and dashboard for plant engineers.", (ApiSettings, "api")))
def api() -> None:
    from services.api.server import run

    run(_settings())


from services.api.cli import keys_app, retention, rollup  # noqa: E402  (API tools, kept together)

app.add_typer(keys_app, name="keys")
app.command()(rollup)
app.command()(retention)

from services.cli.devices import devices_app  # noqa: E402

app.add_typer(devices_app, name="devices")

if _DEV is not None:
    _DEV.register(app, db_app, _settings)


@app.command(
    help=_help(
        "Simulated factory: vision stations, AGVs, 5G modules and machines publishing over MQTT.",
        (SimulatorSettings, "simulator"),
    )
)
def simulate(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
) -> None:
    from services.simulator.factory import run

    run(_settings(), duration=duration)


@app.command("settings")
def show_settings(
    markdown: Annotated[
        bool, typer.Option(help="Print the reference table of all settings instead.")
    ] = False,
) -> None:
    """Print the effective settings (secrets masked) as JSON."""
    if markdown:
        from services.core.settings_doc import render

        typer.echo(render(), nl=False)
        return
    typer.echo(_settings().model_dump_json(indent=2))


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)
