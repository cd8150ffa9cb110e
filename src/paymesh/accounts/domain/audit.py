"""The ledger's hash chain: a canonical encoding of transfers and the batch hash.

Every committed batch of new transfers is one link of a chain::

    hash = sha256(prev_hash (32 raw bytes) || encode(t1, seq) || encode(t2, seq) || ...)

with the transfers in insertion order and ``prev_hash`` the hash of the
batch before (:data:`GENESIS_HASH` for the first). Changing, removing,
adding or reordering any stored transfer changes its batch's hash.

The encoding (version 1) is fixed forever, since stored hashes depend on it:
a version byte, then every stored field of the transfer in a fixed order;
strings as a 4-byte big-endian length and their UTF-8 bytes, integers as
8-byte big-endian signed, the optional ``expires_at_us`` behind a presence
byte, the flags as one byte (linked 1, pending 2, post_pending 4,
void_pending 8). Length prefixes keep two different transfers from ever
encoding to the same bytes. The transfer's row number (``seq``) is not
encoded: the database assigns it at insert; its order within a batch is
covered because the hash follows that order.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from paymesh.accounts.domain.types import Transfer, TransferFlags

__all__ = ["ENCODING_VERSION", "GENESIS_HASH", "BatchDigest", "batch_hash", "encode_transfer"]

ENCODING_VERSION = 1
GENESIS_HASH = "0" * 64

_INT = struct.Struct(">q")
_LEN = struct.Struct(">I")


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _LEN.pack(len(raw)) + raw


def _flags(f: TransferFlags) -> int:
    return (
        (1 if f.linked else 0)
        | (2 if f.pending else 0)
        | (4 if f.post_pending else 0)
        | (8 if f.void_pending else 0)
    )


def encode_transfer(t: Transfer, batch_seq: int) -> bytes:
    """The canonical bytes of transfer `t` stored in batch `batch_seq`."""
    expires = b"\x00" if t.expires_at_us is None else b"\x01" + _INT.pack(t.expires_at_us)
    return b"".join(
        (
            bytes((ENCODING_VERSION,)),
            _str(t.id),
            _str(t.tenant_id),
            _str(t.debit_account_id),
            _str(t.credit_account_id),
            _INT.pack(t.amount),
            _str(t.currency),
            bytes((_flags(t.flags),)),
            _str(t.pending_id),
            _INT.pack(t.timeout_seconds),
            expires,
            _str(t.code),
            _str(t.reference),
            _INT.pack(t.created_at_us),
            _INT.pack(batch_seq),
        )
    )


class BatchDigest:
    """The hash of one batch, fed one transfer at a time (so a verifier can stream)."""

    def __init__(self, prev_hash: str, batch_seq: int) -> None:
        self._sha = hashlib.sha256(bytes.fromhex(prev_hash))
        self.batch_seq = batch_seq
        self.count = 0

    def add(self, t: Transfer) -> None:
        """Append the next transfer of the batch."""
        self._sha.update(encode_transfer(t, self.batch_seq))
        self.count += 1

    def hexdigest(self) -> str:
        """The batch's hash, 64 hex digits."""
        return self._sha.hexdigest()


def batch_hash(prev_hash: str, batch_seq: int, transfers: Iterable[Transfer]) -> str:
    """The hash of batch `batch_seq` holding `transfers` (in insertion order)."""
    digest = BatchDigest(prev_hash, batch_seq)
    for t in transfers:
        digest.add(t)
    return digest.hexdigest()
