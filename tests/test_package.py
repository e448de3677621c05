"""The distribution: `pip install factory5g` gives the services, their JSON Schemas and their
runtime dependencies, and nothing of the development tooling (f5gdev/, loadtests/).

The wheel is built offline from a copy of the sources and installed without dependencies into
a fresh virtualenv that sees only the runtime dependencies' files (linked from this
environment), so an import of a dev-only package by the services fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
DEV_ONLY = (
    "numpy",
    "matplotlib",
    "playwright",
    "jsonschema",
    "import-linter",
    "aiosmtpd",
    "httpx",
)


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(
        REPO / "services", src / "services", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--wheel-dir",
        str(out),
        ".",
        cwd=src,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("factory5g-*.whl")
    return path


def test_wheel_holds_the_services_and_schemas_not_the_tooling(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "services/api/app.py",
        "services/cli/__main__.py",
        "services/ingest/service.py",
        "services/rules/service.py",
        "services/simulator/factory.py",
        "services/protocols/__init__.py",
        "services/protocols/sparkplug_b_pb2.py",
        "services/protocols/adapters/native.py",
        "services/security/broker_auth.py",
        "services/core/schemas/agv.schema.json",
        "services/core/schemas/telemetry.schema.json",
        "services/core/migrations/env.py",
        "services/api/static/index.html",
        "services/protocols/notify/channels/webhook.py",
        "services/protocols/notify/webhook-notice.schema.json",
    ):
        assert expected in names, expected
    examples = [n for n in names if n.startswith("services/core/schemas/examples/")]
    assert len(examples) == len(list((REPO / "services/core/schemas/examples").rglob("*.json")))
    tooling = [
        n
        for n in names
        if n.split("/")[0] in ("f5gdev", "loadtests", "tests")
        or n.startswith(("services/devstack/", "services/api/seed/"))
        or n.endswith(("hostile.py", "demo.py", "browser.py"))
    ]
    assert tooling == []


def test_wheel_requires_no_dev_only_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(zf.read(meta).decode())
    runtime = [
        Requirement(r).name for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r
    ]
    assert "fastapi" in runtime
    assert [name for name in runtime if name in DEV_ONLY] == []


def _runtime_closure(wheel: Path) -> list[metadata.Distribution]:
    """The installed distributions the wheel needs at run time, with their extras."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(zf.read(meta).decode())
    todo = [(Requirement(r), "") for r in message.get_all("Requires-Dist") or []]
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist = metadata.distribution(req.name)
        for want in ["", *sorted(req.extras)]:
            key = f"{req.name.lower().replace('_', '-')}[{want}]"
            if key in seen:
                continue
            seen[key] = dist
            todo += [(Requirement(r), want) for r in dist.requires or []]
    unique = {d.metadata["Name"].lower(): d for d in seen.values()}
    return list(unique.values())


def test_installed_wheel_runs_with_runtime_dependencies_only(wheel: Path, tmp_path: Path) -> None:
    closure = _runtime_closure(wheel)
    names = {d.metadata["Name"].lower() for d in closure}
    assert not names & set(DEV_ONLY), names & set(DEV_ONLY)
    # Only the runtime dependencies' files are visible in the fresh venv, through one .pth.
    deps = tmp_path / "deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for dist in closure:
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top != ".." and (site / top).exists() and not (deps / top).exists():
                (deps / top).symlink_to(site / top)
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        str(wheel),
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = _run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).stdout.strip()
    (Path(purelib) / "runtime-deps.pth").write_text(f"{deps}\n")

    probe = _run(
        str(python),
        "-c",
        "import services, services.api.app, services.ingest.service, services.rules.service, "
        "services.simulator.factory\n"
        "from services.core.contracts import load_schema\n"
        "assert load_schema('agv')['title']\n"
        "from services.protocols.notify.channels import CHANNELS, webhook\n"
        "assert webhook.schema()['title'] and len(CHANNELS) == 6\n"
        "print(services.__file__)",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(purelib), probe.stdout
    for absent in ("f5gdev", "loadtests", "numpy"):
        out = _run(str(python), "-c", f"import {absent}", cwd=tmp_path)
        assert "ModuleNotFoundError" in out.stderr, (absent, out.stderr)

    cli = _run(str(venv / "bin" / "factory5g"), "--help", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    commands = {
        line.split()[0] for line in cli.stdout.split("Commands:", 1)[1].splitlines() if line.strip()
    }
    assert {"ingest", "rules", "api", "simulate", "db", "keys", "devices", "settings"} <= commands
    assert not commands & {"stack", "up", "bench", "seed", "dashboard", "dev"}, commands

    # Device accounts need the broker's directory named: there is no local stack to default to.
    no_dir = _run(str(venv / "bin" / "factory5g"), "devices", "list", cwd=tmp_path)
    assert no_dir.returncode == 2, no_dir.stdout + no_dir.stderr
    assert "--auth-dir" in no_dir.stderr
    auth = tmp_path / "auth"
    made_dir = _run(
        str(venv / "bin" / "factory5g"), "devices", "list", "--auth-dir", str(auth), cwd=tmp_path
    )
    assert made_dir.returncode == 0, made_dir.stderr
