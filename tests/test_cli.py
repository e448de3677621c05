"""The one `factory5g` program: subcommands, per-service help and config errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.core.settings import ConfigError, load_settings


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_help_lists_the_subcommands() -> None:
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    for name in ("ingest", "rules", "api", "simulate", "db", "stack", "up"):
        assert name in out.stdout


@pytest.mark.parametrize(
    ("service", "key"),
    [
        ("ingest", "F5G_INGEST__BATCH_MAX_ROWS"),
        ("rules", "F5G_RULES__RULES_FILE"),
        ("api", "F5G_API__PORT"),
        ("simulate", "F5G_SIMULATOR__RATE_HZ"),
    ],
)
def test_service_help_explains_its_settings(service: str, key: str) -> None:
    out = _cli(service, "--help")
    assert out.returncode == 0, out.stderr
    assert key in out.stdout
    assert "F5G_DATABASE__URL" in out.stdout
    assert "F5G_MQTT__HOST" in out.stdout


def test_bad_config_fails_at_start_naming_the_key() -> None:
    out = _cli("settings", env={"F5G_MQTT__PORT": "eighteen"})
    assert out.returncode == 2
    assert "F5G_MQTT__PORT" in out.stderr


def test_load_settings_names_nested_keys() -> None:
    with pytest.raises(ConfigError, match="F5G_INGEST__BATCH_MAX_ROWS"):
        load_settings(ingest={"batch_max_rows": 0})


def test_settings_reference_is_current() -> None:
    from pathlib import Path

    from services.core.settings_doc import render

    page = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
    assert page.read_text() == render(), "regenerate: factory5g settings --markdown"


def test_settings_reference_shows_every_default_as_the_variable_takes_it() -> None:
    """A default built by a factory (a list) is shown as the JSON the variable takes, in the
    page and in `--help`, not as pydantic's "undefined" marker."""
    from services.core.settings import NotifySettings, describe
    from services.core.settings_doc import render

    page = render()
    assert "Undefined" not in page
    assert "| `F5G_NOTIFY__ALLOW_PRIVATE_TARGETS` | `[]` |" in page
    assert "F5G_NOTIFY__ALLOW_PRIVATE_TARGETS=[]  " in describe(NotifySettings, "notify")


def test_keys_list_prints_only_the_keys(database_url: str) -> None:
    """`keys list` is read by people and scripts: one line per key on stdout, no log noise."""
    env = {"F5G_DATABASE__URL": database_url}
    made = _cli("keys", "create", "--scope", "read", "--name", "line-display", env=env)
    assert made.returncode == 0, made.stderr
    prefix = made.stdout.split("prefix ", 1)[1].split()[0]
    out = _cli("keys", "list", env=env)
    assert out.returncode == 0, out.stderr
    noise = [ln for ln in (out.stdout + out.stderr).splitlines() if prefix not in ln]
    assert noise == [], f"{len(noise)} lines besides the keys: {noise}"
    assert [ln.split()[0] for ln in out.stdout.splitlines()] == [prefix]
