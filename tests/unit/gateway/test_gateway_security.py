"""Client-secret hashing and signing keys, without I/O."""

from __future__ import annotations

import json

import jwt

from paymesh.gateway.security import (
    ScryptParams,
    generate_signing_key,
    hash_secret,
    load_private_key,
    load_public_key,
    new_client_secret,
    sign,
    verify_secret,
)

FAST = ScryptParams(n=2**10)


def test_a_hashed_secret_verifies_only_the_same_secret() -> None:
    stored = hash_secret("sk_right", FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert "sk_right" not in stored
    assert verify_secret("sk_right", stored)
    assert not verify_secret("sk_wrong", stored)


def test_two_hashes_of_one_secret_differ_by_their_salt() -> None:
    assert hash_secret("same", FAST) != hash_secret("same", FAST)


def test_a_malformed_or_foreign_hash_never_verifies() -> None:
    assert not verify_secret("x", "plain-text")
    assert not verify_secret("x", "bcrypt$1$2$3$4$5")
    assert not verify_secret("x", "scrypt$notanumber$8$1$AAAA$AAAA")


def test_client_secrets_are_long_and_random() -> None:
    a, b = new_client_secret(), new_client_secret()
    assert a != b
    assert a.startswith("sk_")
    assert len(a) >= 40


def test_a_signing_key_is_encrypted_at_rest_and_signs_verifiable_tokens() -> None:
    key = generate_signing_key(passphrase=b"pass", now_us=1)
    assert "ENCRYPTED" in key.private_pem
    jwk = json.loads(key.public_jwk)
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == "EdDSA"
    assert jwk["use"] == "sig"
    assert "d" not in jwk
    token = sign({"sub": "x"}, private=load_private_key(key, passphrase=b"pass"), kid=key.kid)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}
    assert jwt.decode(token, load_public_key(key), algorithms=["EdDSA"]) == {"sub": "x"}
