"""`factory5g dashboard screenshots`: PNGs of the three dashboard pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.core.settings import load_settings

dashboard_app = typer.Typer(help="The web dashboard served by the API.")


@dashboard_app.command()
def screenshots(
    key: Annotated[
        str | None,
        typer.Option(envvar="F5G_DASHBOARD_KEY", help="A read key of the running API."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for the PNGs.")] = Path("docs/screenshots"),
    url: Annotated[
        str | None, typer.Option(help="Dashboard URL (default: the API's host and port).")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="Start a throwaway seeded platform (private servers, rules, API) and shoot "
            "that instead of a running one."
        ),
    ] = False,
    project: Annotated[str | None, typer.Option(help="Project page to show.")] = None,
    device: Annotated[str | None, typer.Option(help="Device page to show.")] = None,
    lang: Annotated[str, typer.Option(help="en | zh")] = "en",
) -> None:
    """Portfolio, project and device pages at 1920x1080 in headless Chromium."""
    from f5gdev.dashboard.browser import take_screenshots

    if demo:
        from f5gdev.dashboard.demo import demo_platform

        with demo_platform() as (demo_url, demo_key):
            paths = take_screenshots(demo_url, demo_key, out, project or "p1", device, lang)
    else:
        if key is None:
            typer.echo("--key (or F5G_DASHBOARD_KEY) is needed without --demo", err=True)
            raise typer.Exit(2)
        if url is None:
            api = load_settings().api
            url = f"http://{api.host}:{api.port}"
        paths = take_screenshots(url, key, out, project, device, lang)
    for path in paths:
        typer.echo(str(path))
