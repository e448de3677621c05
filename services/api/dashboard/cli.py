"""`factory5g dashboard screenshots`: PNGs of the three dashboard pages from a running API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.core.settings import load_settings

dashboard_app = typer.Typer(help="The web dashboard served by the API.")


@dashboard_app.command()
def screenshots(
    key: Annotated[
        str, typer.Option(envvar="F5G_DASHBOARD_KEY", help="A read key of the running API.")
    ],
    out: Annotated[Path, typer.Option(help="Directory for the PNGs.")] = Path("docs/screenshots"),
    url: Annotated[
        str | None, typer.Option(help="Dashboard URL (default: the API's host and port).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Project page to show.")] = None,
    device: Annotated[str | None, typer.Option(help="Device page to show.")] = None,
    lang: Annotated[str, typer.Option(help="en | zh")] = "en",
) -> None:
    """Portfolio, project and device pages at 1920x1080 in headless Chromium."""
    from services.api.dashboard.browser import take_screenshots

    if url is None:
        api = load_settings().api
        url = f"http://{api.host}:{api.port}"
    for path in take_screenshots(url, key, out, project, device, lang):
        typer.echo(str(path))
