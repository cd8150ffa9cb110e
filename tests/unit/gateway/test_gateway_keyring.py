"""Which signing keys verify: the active one, and retired ones while their tokens live."""

from __future__ import annotations

from paymesh.gateway.domain import SigningKey
from paymesh.gateway.keyring import LEEWAY_S, key_states

TTL = 600


def _key(kid: str, retired_at_us: int | None) -> SigningKey:
    return SigningKey(kid, "pem", "{}", created_at_us=0, retired_at_us=retired_at_us)


def test_a_retired_key_verifies_until_its_last_tokens_expire_then_is_expired() -> None:
    retired = 1_000_000_000
    keys = [_key("new", None), _key("old", retired)]
    grace_us = (TTL + LEEWAY_S) * 1_000_000
    during = key_states(keys, now_us=retired + grace_us - 1, token_ttl_s=TTL)
    assert [(k.kid, k.status) for k in during] == [("new", "active"), ("old", "retired")]
    assert during[1].verifies_until_us == retired + grace_us
    after = key_states(keys, now_us=retired + grace_us, token_ttl_s=TTL)
    assert [k.status for k in after] == ["active", "expired"]
    assert after[0].verifies_until_us is None
