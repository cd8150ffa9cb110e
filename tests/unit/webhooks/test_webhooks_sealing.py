"""Endpoint secrets at rest: sealed with AES-GCM, bound to their endpoint, useless
without the key."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from paymesh.webhooks.sealing import SecretBox, new_secret


def test_a_new_secret_is_whsec_and_random() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_")
    assert a != b
    assert len(a) >= 6 + 43


def test_a_sealed_secret_opens_with_the_same_key_for_the_same_endpoint_only() -> None:
    box, secret = SecretBox("key-one"), new_secret()
    sealed = box.seal(secret, "we_1")
    assert secret not in sealed
    assert box.open(sealed, "we_1") == secret
    with pytest.raises(InvalidTag):
        box.open(sealed, "we_2")
    with pytest.raises(InvalidTag):
        SecretBox("key-two").open(sealed, "we_1")


def test_sealing_twice_gives_different_ciphertexts() -> None:
    box = SecretBox("k")
    assert box.seal("whsec_a", "we_1") != box.seal("whsec_a", "we_1")
