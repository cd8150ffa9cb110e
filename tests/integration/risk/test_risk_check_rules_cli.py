"""`paymesh risk check-rules FILE`: what an operator runs on a ConfigMap before applying it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from paymesh.cli import app

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_rules_file_is_valid_and_its_version_and_checksum_are_printed() -> None:
    result = CliRunner().invoke(app, ["risk", "check-rules", str(REPO / "deploy/risk-rules.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")
    assert "21 rules" in result.output
    assert "checksum " in result.output


def test_a_rule_of_an_unknown_kind_fails_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: '2'\n"
        "rules:\n"
        "  - {id: burst, kind: velocityy, action: decline, reason: too_fast}\n"
    )
    result = CliRunner().invoke(app, ["risk", "check-rules", str(bad)])
    assert result.exit_code == 1
    assert "invalid: " in result.output
    assert "velocityy" in result.output


def test_a_missing_file_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["risk", "check-rules", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "cannot read" in result.output
