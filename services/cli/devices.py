"""`factory5g devices`: device broker accounts.

Without `--auth-dir` the commands use the local stack's account directory, which only the
development tooling (f5gdev) knows; a runtime install must name the directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from f5gdev.devstack.stack import LocalStack
    from services.security.broker_auth import BrokerAuth

devices_app = typer.Typer(help="Device broker accounts: provision, revoke, list.")

AuthDir = Annotated[
    Path | None,
    typer.Option(help="Broker account directory (default: the local stack's)."),
]


def _auth(auth_dir: Path | None) -> BrokerAuth:
    """The account registry; a broker serving it gets every change live."""
    from services.security.broker_auth import BrokerAuth

    return BrokerAuth(auth_dir) if auth_dir is not None else _local_stack().broker_auth


def _local_stack() -> LocalStack:
    """The development stack, or a clear error where the tooling is not installed."""
    try:
        from f5gdev.devstack.stack import LocalStack
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("f5gdev"):
            raise
        typer.echo(
            "error: no local stack here (development tooling not installed): "
            "pass --auth-dir with the broker's account directory",
            err=True,
        )
        raise typer.Exit(2) from None
    return LocalStack.default()


def _report(live: bool) -> None:
    if live:
        typer.echo("applied to the running broker (no restart)")
    else:
        typer.echo("broker not running: the change applies when it starts", err=True)


@devices_app.command("provision")
def provision(
    project: str,
    kind: str,
    device: str,
    cert: Annotated[
        bool, typer.Option(help="Also issue a client certificate from the development CA.")
    ] = False,
    auth_dir: AuthDir = None,
) -> None:
    """Create a device's broker account (or rotate its password): it may publish only under
    f5g/v1/{project}/{kind}/{device}/# and read only .../cmd/#. The client id must be the
    user name. The password is shown once."""
    from services.security.broker_auth import BrokerRefusedError, ProvisionError

    auth = _auth(auth_dir)
    try:
        creds = auth.provision_device(project, kind, device)
    except ProvisionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except BrokerRefusedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"username: {creds.username}\npassword: {creds.password}\nclient id: {creds.username}"
    )
    if cert:
        from services.security.certs import DevCA

        ca = DevCA(_local_stack().tls_dir)
        ca.ensure()
        crt, key = ca.issue_client(creds.username)
        typer.echo(f"certificate: {crt}\nkey: {key}\nca: {ca.ca_cert}")
    _report(creds.live)


@devices_app.command("revoke")
def revoke(project: str, kind: str, device: str, auth_dir: AuthDir = None) -> None:
    """Remove a device's account; a running broker drops its sessions at once."""
    from services.security.broker_auth import BrokerRefusedError, ProvisionError

    auth = _auth(auth_dir)
    try:
        revoked = auth.revoke_device(project, kind, device)
    except (ProvisionError, BrokerRefusedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {revoked.username}")
    _report(revoked.live)


@devices_app.command("list")
def list_devices(auth_dir: AuthDir = None) -> None:
    """Provisioned devices and the topic subtree each may publish under."""
    auth = _auth(auth_dir)
    for account in sorted(auth.devices(), key=lambda a: a.username):
        typer.echo(f"{account.username:50} {account.subtree}/#")
