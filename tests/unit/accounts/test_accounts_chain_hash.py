"""The hash chain's canonical encoding: stable, and sensitive to every stored field."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from paymesh.accounts.domain import (
    GENESIS_HASH,
    BatchDigest,
    Transfer,
    TransferFlags,
    batch_hash,
    encode_transfer,
)

BASE = Transfer(
    id="t1",
    tenant_id="ten_a",
    debit_account_id="wallet",
    credit_account_id="shop",
    amount=1234,
    currency="USD",
    flags=TransferFlags(pending=True),
    pending_id="",
    timeout_seconds=30,
    expires_at_us=1_700_000_030_000_000,
    code="payment",
    reference="pay_1",
    created_at_us=1_700_000_000_000_000,
)

# One change per stored field (and per flag), each to a value that keeps the rest equal.
CHANGES: list[tuple[str, Any]] = [
    ("id", "t2"),
    ("tenant_id", "ten_b"),
    ("debit_account_id", "wallet2"),
    ("credit_account_id", "shop2"),
    ("amount", 1235),
    ("currency", "EUR"),
    ("flags", TransferFlags(pending=True, linked=True)),
    ("flags", TransferFlags()),
    ("flags", TransferFlags(post_pending=True)),
    ("flags", TransferFlags(void_pending=True)),
    ("pending_id", "p"),
    ("timeout_seconds", 31),
    ("expires_at_us", None),
    ("expires_at_us", 1_700_000_030_000_001),
    ("code", "fee"),
    ("reference", "pay_2"),
    ("created_at_us", 1_700_000_000_000_001),
]


def test_the_encoding_of_a_transfer_is_stable_across_releases() -> None:
    # Stored hashes depend on these bytes: this digest must never change.
    encoded = encode_transfer(BASE, 7)
    assert encoded == encode_transfer(replace(BASE), 7)
    assert hashlib.sha256(encoded).hexdigest() == (
        "ea68473294234c35b7fc95893f5c1fc3ac6677d8a4cadf87ced8e2f03f842a99"
    )


@pytest.mark.parametrize(("name", "value"), CHANGES, ids=[f"{n}={v}" for n, v in CHANGES])
def test_changing_any_single_field_changes_the_encoding_and_the_batch_hash(
    name: str, value: Any
) -> None:
    changed = replace(BASE, **{name: value})
    assert encode_transfer(changed, 7) != encode_transfer(BASE, 7)
    assert batch_hash(GENESIS_HASH, 7, [changed]) != batch_hash(GENESIS_HASH, 7, [BASE])


def test_the_batch_seq_and_the_previous_hash_are_part_of_the_hash() -> None:
    assert encode_transfer(BASE, 7) != encode_transfer(BASE, 8)
    other_prev = "f" * 64
    assert batch_hash(other_prev, 7, [BASE]) != batch_hash(GENESIS_HASH, 7, [BASE])


def test_order_removal_and_field_boundaries_change_the_batch_hash() -> None:
    second = replace(BASE, id="t2")
    both = batch_hash(GENESIS_HASH, 1, [BASE, second])
    assert both != batch_hash(GENESIS_HASH, 1, [second, BASE])
    assert both != batch_hash(GENESIS_HASH, 1, [BASE])
    # Length prefixes: moving characters from one string field to the next is not a no-op.
    shifted = replace(BASE, code="paymentp", reference="ay_1")
    assert encode_transfer(shifted, 1) != encode_transfer(BASE, 1)


def test_the_streaming_digest_equals_the_batch_hash_and_counts_transfers() -> None:
    digest = BatchDigest(GENESIS_HASH, 3)
    for t in (BASE, replace(BASE, id="t2")):
        digest.add(t)
    assert digest.count == 2
    assert digest.hexdigest() == batch_hash(GENESIS_HASH, 3, [BASE, replace(BASE, id="t2")])
    assert len(digest.hexdigest()) == 64
