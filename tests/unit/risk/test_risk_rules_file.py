"""The rules file: what parses into which rules, and what is refused with a clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paymesh.risk.domain import Action, AmountLimit, Dimension, Velocity
from paymesh.risk.errors import RulesInvalid
from paymesh.risk.rules import parse_rules

EXAMPLE = Path(__file__).parents[3] / "deploy" / "risk-rules.yaml"

GOOD = b"""\
version: "2026-11-26.1"
thresholds: {review_at: 60, decline_at: 90}
rules:
  - id: burst
    kind: velocity
    dimension: payer
    window_s: 60
    max_count: 5
    max_sum: {USD: 100000}
    action: decline
    reason: velocity_payer_burst
  - {id: limit, kind: amount_limit, max_amount: {USD: 1000}, action: review, reason: big}
"""


def test_a_rules_file_becomes_rules_with_its_version_and_content_checksum() -> None:
    rules = parse_rules(GOOD)
    assert rules.version == "2026-11-26.1"
    assert rules.checksum == hashlib.sha256(GOOD).hexdigest()
    burst, limit = rules.rules
    assert burst.condition == Velocity(Dimension.PAYER, 60, 5, (("USD", 100_000),))
    assert (burst.action, burst.reason_code, burst.score) == (
        Action.DECLINE,
        "velocity_payer_burst",
        100,
    )
    assert limit.condition == AmountLimit((("USD", 1_000),), None)
    assert limit.score == 50  # the default for review
    assert (rules.thresholds.review_at, rules.thresholds.decline_at) == (60, 90)


def test_the_example_file_has_at_least_twenty_rules_with_velocity_and_lists() -> None:
    rules = parse_rules(EXAMPLE.read_bytes())
    kinds = {r.kind for r in rules.rules}
    assert len(rules.rules) >= 20
    assert kinds == {
        "list",
        "amount_limit",
        "velocity",
        "new_account",
        "country_mismatch",
        "amount_zscore",
    }


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"rules: [", "not valid YAML"),
        (b"- just a list", "mapping"),
        (GOOD.replace(b'version: "2026-11-26.1"\n', b""), "version"),
        (GOOD.replace(b"kind: velocity", b"kind: telepathy"), "telepathy"),
        (GOOD.replace(b"max_count: 5", b"max_count: 0"), "max_count"),
        (GOOD.replace(b"dimension: payer", b"dimension: moon"), "dimension"),
        (GOOD.replace(b"window_s: 60", b"window_s: 60\n    colour: red"), "colour"),
        (GOOD.replace(b"{USD: 1000}", b"{XXX: 1000}"), "XXX"),
        (GOOD.replace(b"action: review", b"action: allow"), "allow is only for list"),
        (GOOD.replace(b"id: limit", b"id: burst"), "duplicate rule id"),
        (GOOD.replace(b"review_at: 60", b"review_at: 95"), "review_at"),
        (GOOD.replace(b"reason: big", b"reason: Big Reason"), "reason"),
        (
            GOOD.replace(b"    max_count: 5\n    max_sum: {USD: 100000}\n", b""),
            "max_count, max_sum",
        ),
    ],
)
def test_an_invalid_file_is_refused_with_a_clear_error(content: bytes, words: str) -> None:
    with pytest.raises(RulesInvalid, match=words) as exc:
        parse_rules(content)
    assert exc.value.code == "rules_invalid"
    assert "\n" not in str(exc.value)
