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
        if isinstance(node, ast.ClassDef) and re.match(
            r"(Fake|Mock|Stub|Dummy|Fixed|Manual|Ticking|InMemory)[A-Z]", node.name
        ):
            found.append(f"{_where(path, node)}: class {node.name}")
    return found


def hand_made_tasks(path: Path) -> list[str]:
    """`asyncio.create_task` outside paymesh.platform.loops: background work started by
    hand, which then has to be cancelled and awaited by hand."""
    if path == LOOPS:
        return []
    return [
        _where(path, node)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
        in {"create_task", "ensure_future"}
    ]


def row_mapping_outside_tables(path: Path) -> list[str]:
    """Row <-> object mapping outside its home: a `*_from_row` defined, or an object built
    from `**row._mapping`, anywhere but a service's tables.py (payments: a flow's module)
    and platform/rows.py."""
    if path.name == "tables.py" or "flows" in path.parts or path == SRC / "platform" / "rows.py":
        return []
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.endswith(
            "_from_row"
        ):
            found.append(f"{_where(path, node)}: def {node.name}")
        if (
            isinstance(node, ast.keyword)
            and node.arg is None
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_mapping"
        ):
            found.append(f"{_where(path, node.value)}: **…._mapping")
    return found


def settings_sections_elsewhere(path: Path) -> list[str]:
    """A service's settings section defined anywhere but its own settings.py."""
    found = []
    for node in _tree(path).body:
        if isinstance(node, ast.ClassDef):
            for service in SERVICES:
                if (
                    node.name == f"{_title(service)}Settings"
                    and path != SRC / service / "settings.py"
                ):
                    found.append(f"{_where(path, node)}: class {node.name}")
    return found


def consumers_outside_events(path: Path) -> list[str]:
    """A handler given to `host.consume(...)` in a service's app.py that does not come
    from the service's events.py (a name imported from it, or an object made by one)."""
    tree = _tree(path)
    service = path.parent.name
    from_events = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == f"paymesh.{service}.events"
        for alias in node.names
    }
    made = [
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) in from_events
        for target in node.targets
    ]
    made_names = {t.id for t in made if isinstance(t, ast.Name)}
    made_attributes = {t.attr for t in made if isinstance(t, ast.Attribute)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "consume":
            handler = node.args[2] if len(node.args) > 2 else node
            parts = list(ast.walk(handler))
            names = {n.id for n in parts if isinstance(n, ast.Name)}
            attributes = {n.attr for n in parts if isinstance(n, ast.Attribute)}
            if not (names & (from_events | made_names) or attributes & made_attributes):
                found.append(f"{_where(path, node)}: a consumer not from {service}/events.py")
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


def test_background_tasks_are_started_only_by_the_platform_helper() -> None:
    found = [hit for path in _hand_written() for hit in hand_made_tasks(path)]
    assert found == [], "use paymesh.platform.loops.Background.spawn:\n" + "\n".join(found)


def test_row_mapping_lives_in_tables() -> None:
    found = [hit for path in _hand_written() for hit in row_mapping_outside_tables(path)]
    assert found == [], "map rows in the service's tables.py:\n" + "\n".join(found)


def test_each_service_section_is_defined_only_in_its_own_settings() -> None:
    found = [hit for path in _hand_written() for hit in settings_sections_elsewhere(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_consumers_come_from_the_services_events_module(service: str) -> None:
    app = SRC / service / "app.py"
    assert "consume(" in app.read_text() or service == "accounts"
    assert consumers_outside_events(app) == []


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
    app = tmp_path / "pay" / "app.py"
    app.parent.mkdir()
    app.write_text(
        "import asyncio\n"
        "from paymesh.pay.events import handler_of\n"
        "class R:\n"
        "    def __init__(self, host):\n"
        "        host.consume([T], G, handler_of(self))\n"
        "        host.consume([T], G, self._on_event)\n"
        "        asyncio.create_task(self.run())\n"
        "def mapped(row):\n"
        "    return Thing(**row._mapping)\n"
        "def thing_from_row(row): ...\n"
        "class RiskSettings: ...\n"
    )
    assert [h.split(": ", 1)[1] for h in consumers_outside_events(app)] == [
        "a consumer not from pay/events.py"
    ]
    assert len(hand_made_tasks(app)) == 1
    assert sorted(h.split(": ", 1)[1] for h in row_mapping_outside_tables(app)) == [
        "**…._mapping",
        "def thing_from_row",
    ]
    assert [h.split(": ", 1)[1] for h in settings_sections_elsewhere(app)] == ["class RiskSettings"]
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
