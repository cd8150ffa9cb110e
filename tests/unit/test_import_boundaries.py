"""Services never import one another: import-linter's contracts hold, and would catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_service_importing_another_service_breaks_the_contract(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    breach = copy / "src/paymesh/payments/breach.py"
    breach.write_text("from paymesh.accounts import domain  # noqa: F401\n")
    env_path = str(copy / "src")
    exe = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(exe), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": env_path, "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode != 0
    assert "paymesh.payments.breach" in result.stdout
