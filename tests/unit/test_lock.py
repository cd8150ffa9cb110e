"""The lock files (docs/release.md) agree with pyproject.toml, offline: every pin of
pyproject at exactly that version, every entry with a sha256 hash, nothing that the pins
do not explain, the runtime lock a part of the dev lock; and what src/ and tests/ import
is pinned directly. Each check is shown to see a breach."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
ROOT = "paymesh (pyproject.toml)"  # how uv names pyproject in a `# via` comment
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """{name: version} of `name[extras]==version` requirements; a looser one is a problem."""
    found = {}
    for req in requirements:
        match = PIN.match(req)
        assert match, f"{req!r} is not pinned with =="
        found[norm(match[1])] = match[2]
    return found


def pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"]), pins(project["optional-dependencies"]["dev"])


class Entry:
    def __init__(self, version: str) -> None:
        self.version = version
        self.hashes: list[str] = []
        self.via: set[str] = set()


def parse_lock(text: str) -> dict[str, Entry]:
    """A `uv pip compile --generate-hashes` output: name==version, its --hash lines and
    its `# via` names."""
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    in_via = False
    for line in text.splitlines():
        stripped = line.strip()
        if match := PIN.match(line):
            current = entries[norm(match[1])] = Entry(match[2])
            in_via = False
        elif current is None or not stripped:
            continue
        elif stripped.startswith("--hash="):
            current.hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.add(rest if rest == ROOT else norm(rest))
        elif in_via and stripped.startswith("#   "):
            name = stripped.removeprefix("#").strip()
            current.via.add(name if name == ROOT else norm(name))
        elif not line.startswith((" ", "#")):
            raise AssertionError(f"unexpected lock line: {line!r}")
    return entries


def problems(lock: dict[str, Entry], wanted: dict[str, str]) -> list[str]:
    """What is wrong with a lock meant to hold exactly `wanted` and what it needs."""
    found = []
    for name, version in sorted(wanted.items()):
        if name not in lock:
            found.append(f"{name}=={version} (pyproject) is not in the lock")
        elif lock[name].version != version:
            found.append(f"{name}: pyproject pins {version}, the lock {lock[name].version}")
    for name, entry in sorted(lock.items()):
        if not entry.hashes or not all(h.startswith("sha256:") for h in entry.hashes):
            found.append(f"{name}=={entry.version} has no sha256 hash")
        if ROOT in entry.via and name not in wanted:
            found.append(f"{name} is in the lock for pyproject, which does not pin it")
        if name in wanted and ROOT not in entry.via:
            found.append(f"{name} is pinned in pyproject, the lock says it is not")
    # Everything else must be needed by something that is: follow `via` from the pins.
    explained = {n for n, e in lock.items() if ROOT in e.via}
    while grown := {n for n, e in lock.items() if n not in explained and e.via & explained}:
        explained |= grown
    found += [f"{n} is in the lock, nothing pinned needs it" for n in sorted(set(lock) - explained)]
    return found


def test_the_runtime_lock_is_pyprojects_dependencies_with_hashes() -> None:
    runtime, _ = pyproject()
    assert problems(parse_lock(LOCK.read_text()), runtime) == []


def test_the_dev_lock_is_pyprojects_dependencies_and_dev_extra_with_hashes() -> None:
    runtime, dev = pyproject()
    assert problems(parse_lock(DEV_LOCK.read_text()), runtime | dev) == []


def test_what_the_image_ships_is_what_the_tests_ran_with() -> None:
    """Every runtime lock entry is in the dev lock at the same version, same hashes."""
    runtime, dev = parse_lock(LOCK.read_text()), parse_lock(DEV_LOCK.read_text())
    for name, entry in runtime.items():
        assert name in dev, name
        assert (dev[name].version, sorted(dev[name].hashes)) == (
            entry.version,
            sorted(entry.hashes),
        ), name


def test_the_installed_venv_matches_the_dev_lock() -> None:
    from importlib.metadata import distributions

    installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
    lock = parse_lock(DEV_LOCK.read_text())
    wrong = {
        n: (e.version, installed.get(n)) for n, e in lock.items() if installed.get(n) != e.version
    }
    assert wrong == {}, "make install (the venv is not what the dev lock says)"


def test_the_checks_see_a_breach() -> None:
    good = parse_lock(LOCK.read_text())
    runtime, _ = pyproject()
    name = "fastapi"
    stale = {**runtime, name: "0.0.1"}
    assert f"{name}: pyproject pins 0.0.1, the lock {good[name].version}" in problems(good, stale)
    assert "pytest==9.2.0 (pyproject) is not in the lock" in problems(
        good, {**runtime, "pytest": "9.2.0"}
    )
    dropped = dict(runtime)
    del dropped[name]
    assert f"{name} is in the lock for pyproject, which does not pin it" in problems(good, dropped)
    text = LOCK.read_text()
    unhashed = re.sub(r"(?m)^(sepaxml==\S+) \\\n(    --hash=\S+( \\)?\n)+", r"\1\n", text)
    assert "sepaxml==2.7.0 has no sha256 hash" in problems(parse_lock(unhashed), runtime)
    extra = text + "leftpad==1.0 \\\n    --hash=sha256:00\n    # via nothing-here\n"
    assert "leftpad is in the lock, nothing pinned needs it" in problems(parse_lock(extra), runtime)


def test_make_install_uses_the_dev_lock_with_hashes_and_lock_regenerates_both() -> None:
    def dry_run(target: str) -> str:
        # -B: the recipes as from nothing, whatever the venv; -n: printed, not run.
        result = subprocess.run(
            ["make", "-nB", target], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    install = dry_run("install")
    assert "pip install -q --require-hashes -r requirements-dev.lock" in install
    assert "pip install -q --no-deps -e ." in install
    lock = dry_run("lock")
    for out, extra in (("requirements.lock", ""), ("requirements-dev.lock", "--extra dev ")):
        assert re.search(
            rf"uv pip compile pyproject\.toml .*--generate-hashes .*--python-version 3\.11 "
            rf".*{extra}-o {re.escape(out)}",
            lock,
        ), lock
    audit = dry_run("audit")
    assert re.search(r"pip-audit .*--strict .*--require-hashes -r requirements\.lock", audit)
    # The stamp changes with the lock: a new lock re-installs.
    makefile = (REPO / "Makefile").read_text()
    assert "$(STAMP): pyproject.toml $(DEV_LOCK)" in makefile
    assert "cat pyproject.toml $(DEV_LOCK) | sha1sum" in makefile


def imported(folder: Path) -> set[str]:
    """Top-level names of the absolute imports under folder."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"paymesh", "tests", "__future__"}


def unpinned_imports(folder: str, allowed: set[str]) -> dict[str, list[str]]:
    """{top-level module: the distributions it comes from} for what is imported under
    folder/ and comes from no distribution in allowed."""
    owners = packages_distributions()
    # The tests' own helpers, and the repository's tools (tests put tools/ on the path).
    local = {p.stem for p in (REPO / "tests").rglob("*.py")}
    local |= {p.stem for p in (REPO / "tools").glob("*.py")}
    missing = {}
    for name in sorted(imported(REPO / folder)):
        if name == "_typeshed" or name in local:  # type-checking only; our own modules
            continue
        dists = {norm(d) for d in owners.get(name, [])}
        assert dists, f"{name}: imported under {folder}/, installed by no distribution"
        if not dists & allowed:
            missing[name] = sorted(dists)
    return missing


@pytest.mark.parametrize("folder", ["src", "tests"])
def test_what_is_imported_is_pinned_directly(folder: str) -> None:
    runtime, dev = pyproject()
    allowed = set(runtime) | (set(dev) if folder == "tests" else set())
    assert unpinned_imports(folder, allowed) == {}, "pin them in pyproject.toml"


def test_the_import_check_sees_a_breach() -> None:
    runtime, dev = pyproject()
    assert unpinned_imports("src", set(runtime) - {"starlette"}) == {"starlette": ["starlette"]}
    assert "requests" in unpinned_imports("tests", set(runtime) | set(dev) - {"requests"})
