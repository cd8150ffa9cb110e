"""The one shape of a service (docs/contributing.md), checked: each rule a test that
fails on the first module breaking it, and each check shown to see a breach."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "paymesh"
GRPC_SERVICES = ("accounts", "payments", "risk", "webhooks")
SERVICES = (*GRPC_SERVICES, "gateway")
LOOPS = SRC / "platform" / "loops.py"


def _title(service: str) -> str:
    return service.capitalize()


def _hand_written() -> list[Path]:
    return [
        p
        for p in sorted(SRC.rglob("*.py"))
        if not re.search(r"contracts/[a-z]+/v1/", p.as_posix()) and "migrations" not in p.parts
    ]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _name(path: Path) -> str:
    return str(path.relative_to(SRC.parent)) if path.is_relative_to(SRC.parent) else str(path)


def _where(path: Path, node: ast.AST) -> str:
    return f"{_name(path)}:{getattr(node, 'lineno', 0)}"


def star_imports(path: Path) -> list[str]:
    """`from x import *` anywhere in the module."""
    return [
        _where(path, node)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
    ]


def fakes(path: Path) -> list[str]:
    """A fake (a class or module named so) shipped in src/: fakes live in tests/fakes/."""
    found = []
    if re.fullmatch(r"(testing|fakes?|mocks?|stubs?)\.py", path.name):
        found.append(f"{_name(path)}: a test-double module")
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ClassDef) and re.match(r"(Fake|Mock|Stub)[A-Z]", node.name):
            found.append(f"{_where(path, node)}: class {node.name}")
    return found


def hand_written_cancel_waits(path: Path) -> list[str]:
    """`suppress(CancelledError)`: the start/stop loop written again instead of
    using paymesh.platform.loops."""
    if path == LOOPS:
        return []
    found = []
    for node in ast.walk(_tree(path)):
        if (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "suppress"
            and any(
                (getattr(a, "attr", None) or getattr(a, "id", None)) == "CancelledError"
                for a in node.args
            )
        ):
            found.append(_where(path, node))
    return found


def _classes(path: Path) -> set[str]:
    return {n.name for n in _tree(path).body if isinstance(n, ast.ClassDef)}


def test_no_star_imports_or_star_re_exports_in_src() -> None:
    modules = _hand_written()
    assert len(modules) > 50
    found = [hit for path in modules for hit in star_imports(path)]
    assert found == [], "import names explicitly:\n" + "\n".join(found)


def test_no_fake_ships_in_src() -> None:
    found = [hit for path in _hand_written() for hit in fakes(path)]
    assert found == [], "move test doubles to tests/fakes/:\n" + "\n".join(found)


def test_background_loops_use_the_platform_helper() -> None:
    found = [hit for path in _hand_written() for hit in hand_written_cancel_waits(path)]
    assert found == [], "use paymesh.platform.loops (Background, Periodic):\n" + "\n".join(found)


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_slots(service: str) -> None:
    package = SRC / service
    for slot in ("ports.py", "settings.py", "service.py", "store.py", "tables.py", "app.py"):
        assert (package / slot).is_file(), f"{service} has no {slot}"
    assert f"Sql{_title(service)}Store" in _classes(package / "store.py")
    assert "Deps" in _classes(package / "ports.py")
    assert f"{_title(service)}Settings" in _classes(package / "settings.py")


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_every_grpc_service_has_its_servicer_and_consumers_in_the_same_place(
    service: str,
) -> None:
    package = SRC / service
    assert f"{_title(service)}Servicer" in _classes(package / "api.py")
    assert (package / "events.py").is_file()
    assert not (package / "rows.py").exists(), "row mapping lives in tables.py"


def test_the_checks_see_a_breach(tmp_path: Path) -> None:
    probe = tmp_path / "testing.py"
    probe.write_text(
        "import contextlib, asyncio\n"
        "from os.path import *\n"
        "class FakeLedger: ...\n"
        "async def stop(task):\n"
        "    with contextlib.suppress(asyncio.CancelledError):\n"
        "        await task\n"
    )
    assert len(star_imports(probe)) == 1
    assert [h.split(": ", 1)[1] for h in fakes(probe)] == [
        "a test-double module",
        "class FakeLedger",
    ]
    assert len(hand_written_cancel_waits(probe)) == 1
    assert fakes(SRC / "platform" / "loops.py") == []
    assert hand_written_cancel_waits(LOOPS) == []


def use_case_signature_breaches(path: Path) -> list[str]:
    """Public use cases not of the one signature: `(what was asked, *, [caller,] deps)`."""
    found = []
    for node in _tree(path).body:
        if isinstance(node, ast.AsyncFunctionDef) and not node.name.startswith("_"):
            keywords = [a.arg for a in node.args.kwonlyargs]
            loose = set(keywords) & {"store", "clock", "tenant_id", "settings"}
            if "deps" not in keywords or loose:
                found.append(f"{_where(path, node)}: {node.name}(*, {', '.join(keywords)})")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_use_case_takes_its_dependencies_as_deps(service: str) -> None:
    found = use_case_signature_breaches(SRC / service / "service.py")
    assert found == [], "use cases take (..., *, caller, deps):\n" + "\n".join(found)


def test_the_use_case_check_sees_a_breach(tmp_path: Path) -> None:
    probe = tmp_path / "service.py"
    probe.write_text(
        "async def good(cmd, *, caller, deps): ...\n"
        "async def bad(cmd, *, store, clock): ...\n"
        "async def _private(cmd, *, store): ...\n"
    )
    assert [h.split(": ", 1)[1] for h in use_case_signature_breaches(probe)] == [
        "bad(*, store, clock)"
    ]
