"""The layering of the code is a contract (pyproject.toml `[tool.importlinter]`), checked by
`make imports` before the tests. These tests prove the check bites: the repository keeps
the contract, and a copy of it with one forbidden import added breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path so its packages, not the installed ones, are read.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_repository_keeps_the_import_contracts() -> None:
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        # a service importing a sibling service (the old rules -> ingest adapters)
        ("services/rules/engine.py", "from services.ingest import writer", "Layers"),
        # a lower layer importing a higher one, hidden inside a function
        (
            "services/core/db.py",
            "def _f() -> None:\n    from services.security import broker_auth",
            "Layers",
        ),
        # the protocols layer reaching into a service (the old hub -> ingest pipeline, reversed)
        ("services/protocols/pipeline.py", "import services.api.app", "Layers"),
        # the product importing the dev tooling or a dev-only dependency
        ("services/api/app.py", "from f5gdev.devstack import stack", "never imports"),
        ("services/ingest/writer.py", "import numpy", "never imports"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    for name in ("services", "f5gdev", "loadtests"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("static"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint(tmp_path).returncode == 0, "the untouched copy must keep the contracts"
    target = tmp_path / module
    target.write_text(target.read_text() + "\n" + statement + "\n")
    out = _lint(tmp_path)
    assert out.returncode != 0, out.stdout
    broken = [ln for ln in out.stdout.splitlines() if ln.endswith("BROKEN")]
    assert len(broken) == 1, out.stdout
    assert contract in broken[0]
