"""The gateway's pure rules: scopes, token claims, idempotency, entry signs, derived ids."""

from __future__ import annotations

import pytest

from paymesh.gateway import domain
from paymesh.gateway.domain import IdempotencyDecision, IdempotencyRecord

NOW = 1_700_000_000_000_000
STALE = 60_000_000


def _record(**over: object) -> IdempotencyRecord:
    fields: dict[str, object] = {
        "tenant_id": "ten_a",
        "key": "k",
        "fingerprint": "fp",
        "state": "completed",
        "owner": "o",
        "created_at_us": NOW - 1_000_000,
        "expires_at_us": NOW + 1_000_000,
        "response_status": 201,
        "response_headers": {"content-type": "application/json"},
        "response_body": b"{}",
    }
    fields.update(over)
    return IdempotencyRecord(**fields)  # type: ignore[arg-type]


def test_a_token_without_a_requested_scope_gets_all_the_clients_scopes() -> None:
    allowed = frozenset({"payments:read", "payments:write"})
    assert domain.grant_scopes(None, allowed) == allowed
    assert domain.grant_scopes("  ", allowed) == allowed


def test_a_token_may_narrow_its_scopes_to_a_subset() -> None:
    allowed = frozenset({"payments:read", "payments:write"})
    assert domain.grant_scopes("payments:read", allowed) == {"payments:read"}


def test_a_token_may_not_ask_for_a_scope_the_client_lacks() -> None:
    with pytest.raises(domain.InvalidScope, match="admin"):
        domain.grant_scopes("payments:read admin", frozenset({"payments:read"}))


def test_admin_is_not_among_the_non_admin_scopes() -> None:
    assert "admin" not in domain.NON_ADMIN_SCOPES
    assert domain.NON_ADMIN_SCOPES | {"admin"} == set(domain.ALL_SCOPES)


def test_token_claims_carry_tenant_scope_and_lifetime() -> None:
    claims = domain.build_claims(
        client_id="cli_1", tenant_id="ten_1", scopes={"b", "a"}, issuer="paymesh",
        audience="paymesh-api", now_s=1000, ttl_s=600, jti="jti_1",
    )  # fmt: skip
    assert claims == {
        "iss": "paymesh", "aud": "paymesh-api", "sub": "cli_1", "tenant": "ten_1",
        "scope": "a b", "iat": 1000, "exp": 1600, "jti": "jti_1",
    }  # fmt: skip
    assert set(domain.REQUIRED_CLAIMS) <= set(claims)


def test_no_record_means_proceed() -> None:
    assert domain.decide_idempotency(None, "fp", now_us=NOW, stale_after_us=STALE) is (
        IdempotencyDecision.PROCEED
    )


def test_a_completed_record_with_the_same_fingerprint_is_replayed() -> None:
    decision = domain.decide_idempotency(_record(), "fp", now_us=NOW, stale_after_us=STALE)
    assert decision is IdempotencyDecision.REPLAY


def test_another_request_under_the_same_key_is_reuse() -> None:
    for state in ("completed", "in_progress"):
        decision = domain.decide_idempotency(
            _record(state=state), "other", now_us=NOW, stale_after_us=STALE
        )
        assert decision is IdempotencyDecision.REUSED


def test_a_fresh_in_progress_record_is_in_progress() -> None:
    decision = domain.decide_idempotency(
        _record(state="in_progress"), "fp", now_us=NOW, stale_after_us=STALE
    )
    assert decision is IdempotencyDecision.IN_PROGRESS


def test_a_stale_in_progress_record_may_be_taken_over() -> None:
    record = _record(state="in_progress", created_at_us=NOW - STALE)
    decision = domain.decide_idempotency(record, "fp", now_us=NOW, stale_after_us=STALE)
    assert decision is IdempotencyDecision.TAKE_OVER


def test_an_expired_record_is_forgotten_even_for_another_request() -> None:
    record = _record(expires_at_us=NOW)
    assert domain.decide_idempotency(record, "other", now_us=NOW, stale_after_us=STALE) is (
        IdempotencyDecision.TAKE_OVER
    )


def test_fingerprints_ignore_json_formatting_but_not_content_method_or_path() -> None:
    a = domain.fingerprint("POST", "/v1/payments", b'{"amount": 1, "currency": "USD"}')
    b = domain.fingerprint("post", "/v1/payments", b'{"currency":"USD","amount":1}')
    assert a == b
    assert a != domain.fingerprint("POST", "/v1/payments", b'{"currency":"USD","amount":2}')
    assert a != domain.fingerprint("POST", "/v1/refunds", b'{"currency":"USD","amount":1}')
    assert domain.fingerprint("POST", "/x", b"not json") != domain.fingerprint("POST", "/x", b"")


def test_entries_are_signed_from_the_accounts_side() -> None:
    assert domain.entry_amount("credit", 500) == 500
    assert domain.entry_amount("debit", 500) == -500
    with pytest.raises(ValueError, match="side"):
        domain.entry_amount("sideways", 1)


def test_entry_status_follows_the_transfer_flags() -> None:
    assert domain.entry_status(pending=True, post_pending=False, void_pending=False) == "pending"
    assert domain.entry_status(pending=False, post_pending=True, void_pending=False) == "posted"
    assert domain.entry_status(pending=False, post_pending=False, void_pending=True) == "voided"
    assert domain.entry_status(pending=False, post_pending=False, void_pending=False) == "posted"


def test_derived_ids_are_stable_and_differ_by_tenant_key_and_path() -> None:
    base = {"tenant_id": "ten_a", "key": "k1", "path": "/v1/payments"}
    first = domain.derive_id("pay", **base)
    assert first == domain.derive_id("pay", **base)
    assert first.startswith("pay_")
    assert len(first) == len("pay_") + 26  # 128 bits in base32
    assert first[4:].isalnum()
    assert first[4:].islower()
    for change in ({"tenant_id": "ten_b"}, {"key": "k2"}, {"path": "/v1/refunds"}):
        assert domain.derive_id("pay", **{**base, **change}) != first


def test_service_errors_map_to_http_statuses() -> None:
    assert domain.upstream_status("NOT_FOUND") == 404
    for name in ("ALREADY_EXISTS", "FAILED_PRECONDITION", "ABORTED"):
        assert domain.upstream_status(name) == 409
    assert domain.upstream_status("INVALID_ARGUMENT") == 422
    assert domain.upstream_status("UNAUTHENTICATED") == 401
    assert domain.upstream_status("UNAVAILABLE") == 503
    assert domain.upstream_status("DEADLINE_EXCEEDED") == 503
    assert domain.upstream_status("INTERNAL") == 502
