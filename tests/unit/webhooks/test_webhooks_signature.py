"""The public verification helper: what merchants run on every delivery."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paymesh.webhooks.signature import (
    MalformedHeader,
    NoMatchingSignature,
    SignatureError,
    TimestampOutsideTolerance,
    sign,
    signature_header,
    verify,
)

BODY = b'{"id":"evt_1","type":"payment.succeeded"}'
SECRET = "whsec_test"
T = 1_767_225_600


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, T) == expected
    assert signature_header(BODY, [SECRET], T) == f"t={T},v1={expected}"


def test_a_genuine_fresh_delivery_verifies() -> None:
    verify(BODY, signature_header(BODY, [SECRET], T), SECRET, now=T)


def test_a_changed_body_or_another_secret_is_rejected() -> None:
    header = signature_header(BODY, [SECRET], T)
    with pytest.raises(NoMatchingSignature):
        verify(BODY + b" ", header, SECRET, now=T)
    with pytest.raises(NoMatchingSignature):
        verify(BODY, header, "whsec_other", now=T)
    # The signature binds the timestamp: replaying it with a new t fails.
    forged = header.replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(NoMatchingSignature):
        verify(BODY, forged, SECRET, now=T + 60)


@pytest.mark.parametrize("skew", [300, -300])
def test_a_timestamp_at_the_tolerance_is_accepted(skew: int) -> None:
    verify(BODY, signature_header(BODY, [SECRET], T), SECRET, now=T + skew)


@pytest.mark.parametrize("skew", [301, -301, 10**9])
def test_an_old_or_far_future_timestamp_is_rejected(skew: int) -> None:
    with pytest.raises(TimestampOutsideTolerance):
        verify(BODY, signature_header(BODY, [SECRET], T), SECRET, now=T + skew)


def test_the_tolerance_is_configurable() -> None:
    header = signature_header(BODY, [SECRET], T)
    verify(BODY, header, SECRET, now=T + 3600, tolerance_s=3600)
    with pytest.raises(TimestampOutsideTolerance):
        verify(BODY, header, SECRET, now=T + 11, tolerance_s=10)


def test_any_of_several_signatures_and_secrets_may_match() -> None:
    both = signature_header(BODY, ["whsec_new", "whsec_old"], T)
    verify(BODY, both, "whsec_old", now=T)
    verify(BODY, both, "whsec_new", now=T)
    only_new = signature_header(BODY, ["whsec_new"], T)
    verify(BODY, only_new, ["whsec_old", "whsec_new"], now=T)
    with pytest.raises(NoMatchingSignature):
        verify(BODY, only_new, ["whsec_old"], now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={sign(BODY, SECRET, T)}",
        f"t={T}",
        f"t=abc,v1={sign(BODY, SECRET, T)}",
        f"t=-{T},v1={sign(BODY, SECRET, T)}",
        f"t={T},t={T},v1={sign(BODY, SECRET, T)}",
        f"t={T},v0={sign(BODY, SECRET, T)}",
        "t=1," + "v1=00," * 2000,
    ],
)
def test_a_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(MalformedHeader):
        verify(BODY, header, SECRET, now=T)


def test_every_rejection_is_a_signature_error_and_a_value_error() -> None:
    for exc in (MalformedHeader, TimestampOutsideTolerance, NoMatchingSignature):
        assert issubclass(exc, SignatureError)
        assert issubclass(exc, ValueError)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify(BODY, signature_header(BODY, [SECRET], T), SECRET, now=T)
    assert calls


def test_the_helper_imports_nothing_but_the_standard_library() -> None:
    code = (
        "import sys; import paymesh.webhooks.signature; "
        "heavy = {'sqlalchemy', 'grpc', 'httpx', 'pydantic', 'cryptography', 'structlog'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_stdlib_recipe_in_the_merchant_guide_agrees_with_the_helper() -> None:
    guide = (Path(__file__).parents[3] / "docs" / "webhooks.md").read_text()
    block = guide.split("```python\nimport hashlib, hmac, time\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec("import hashlib, hmac, time\n" + block, namespace)
    recipe = namespace["verify_paymesh"]
    now = int(time.time())
    rotated = signature_header(BODY, ["whsec_new", SECRET], now)
    assert recipe(BODY, rotated, SECRET)  # type: ignore[operator]
    assert recipe(BODY, rotated, "whsec_new")  # type: ignore[operator]
    assert not recipe(BODY + b"x", rotated, SECRET)  # type: ignore[operator]
    assert not recipe(BODY, rotated, "whsec_other")  # type: ignore[operator]
    stale = signature_header(BODY, [SECRET], now - 301)
    assert not recipe(BODY, stale, SECRET)  # type: ignore[operator]
    assert not recipe(BODY, f"t={now}", SECRET)  # type: ignore[operator]
