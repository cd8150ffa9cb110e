"""What the paymesh command prints, run as a user runs it: every command's --help in
plain, complete sentences, and migrations without Alembic's chatter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from paymesh.cli import app

EXE = Path(sys.executable).parent / "paymesh"


def _commands(group: TyperGroup, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under `group`, as the words a user types."""
    found: list[tuple[str, ...]] = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_group(app))


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _help_text(words: tuple[str, ...], tmp_path: Path) -> str:
    # Wide and without colour: no line is wrapped, so a line break is the text's own.
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "TERMINAL_WIDTH": "400"}
    env["PAYMESH_VAR_DIR"] = str(tmp_path / "var")
    done = _run(*words, "--help", env=env)
    assert done.returncode == 0, (words, done.stderr)
    return done.stdout


def _box(lines: list[str], title: str) -> list[str]:
    """The rows of the ``╭─ title`` panel, without its borders."""
    rows: list[str] = []
    inside = False
    for line in lines:
        if line.startswith(f"╭─ {title} "):
            inside = True
        elif inside and line.startswith("╰"):
            break
        elif inside:
            rows.append(line.strip().strip("│").strip())
    return rows


def test_the_command_tree_is_found() -> None:
    assert {("bootstrap",), ("keys", "rotate"), ("risk", "check-rules"), ()} <= set(COMMANDS)


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "paymesh")
def test_every_help_is_plain_text_in_complete_sentences(
    words: tuple[str, ...], tmp_path: Path
) -> None:
    text = _help_text(words, tmp_path)
    assert "`" not in text, text
    lines = [line.rstrip() for line in text.splitlines()]
    usage = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:"))
    first_box = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    # Each paragraph of the description is one line (nothing cut mid-sentence) and
    # ends a sentence.
    paragraphs = [line.strip() for line in lines[usage + 1 : first_box] if line.strip()]
    assert paragraphs, text
    for paragraph in paragraphs:
        assert paragraph.endswith("."), (words, paragraph)
        assert paragraph[0].isupper() or paragraph.startswith("paymesh"), (words, paragraph)
    # A group lists its commands with their first sentence, whole.
    for row in _box(lines, "Commands"):
        _, _, summary = row.partition(" ")
        assert summary.strip().endswith("."), (words, row)
        assert not summary.strip().endswith("..."), (words, row)


def test_migrating_logs_no_alembic_plugin_lines(tmp_path: Path) -> None:
    env = {**os.environ, "PAYMESH_VAR_DIR": str(tmp_path / "var"), "PAYMESH_LOG_LEVEL": "INFO"}
    done = _run("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert "migrated: accounts, risk, payments, webhooks, gateway" in done.stderr
    output = done.stdout + done.stderr
    assert "setup plugin" not in output
    assert "alembic" not in output
