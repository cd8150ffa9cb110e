"""Sign and verify paymesh webhook payloads: the public helper merchants use.

Every delivery carries ``Paymesh-Signature: t=<unix seconds>,v1=<hex>`` where
``hex`` is HMAC-SHA256 keyed with the endpoint's secret (the whole
``whsec_…`` string, UTF-8) over ``f"{t}.".encode() + body``. While a rotated
secret still signs, the header carries one ``v1=`` per secret.

This module uses the standard library only, so it can be copied as is::

    from paymesh.webhooks.signature import SignatureError, verify

    try:
        verify(request_body, request.headers["Paymesh-Signature"], secret)
    except SignatureError:
        return 400

Exceptions::

    SignatureError                 any reason to reject the delivery
     ├── MalformedHeader           no header, no ``t=``, no ``v1=``, a non-numeric time
     ├── TimestampOutsideTolerance ``t`` older, or further in the future, than the tolerance
     └── NoMatchingSignature       no ``v1`` signature matches any of the secrets
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "MalformedHeader",
    "NoMatchingSignature",
    "SignatureError",
    "TimestampOutsideTolerance",
    "sign",
    "signature_header",
    "verify",
]

DEFAULT_TOLERANCE_S = 300
_SCHEME = "v1"
# A header longer than this is not one we sent (a few signatures at most).
_MAX_HEADER = 4096


class SignatureError(ValueError):
    """The delivery cannot be trusted; answer it with a 4xx and ignore it."""


class MalformedHeader(SignatureError):
    """The header is missing or not of the form ``t=<unix>,v1=<hex>[,v1=<hex>]``."""


class TimestampOutsideTolerance(SignatureError):
    """The signed time is too old (a replay) or too far in the future."""


class NoMatchingSignature(SignatureError):
    """No signature in the header was made with any of the given secrets."""


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}." + payload`` keyed with `secret`."""
    message = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``Paymesh-Signature`` value: ``t=<timestamp>`` then one ``v1=`` per secret."""
    parts = [f"t={timestamp}"]
    parts += [f"{_SCHEME}={sign(payload, s, timestamp)}" for s in secrets]
    return ",".join(parts)


def _parse(header: str) -> tuple[int, list[str]]:
    if not header or len(header) > _MAX_HEADER:
        raise MalformedHeader("missing or oversized signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise MalformedHeader("signature header items must be key=value")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise MalformedHeader("the signature header needs one numeric t=")
            timestamp = int(value)
        elif key == _SCHEME:
            signatures.append(value)
        # Other schemes are ignored, so a future v2 does not break v1 verifiers.
    if timestamp is None:
        raise MalformedHeader("no t= in the signature header")
    if not signatures:
        raise MalformedHeader("no v1= signature in the signature header")
    return timestamp, signatures


def verify(
    payload: bytes,
    header: str,
    secrets: str | Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> None:
    """Check `header` signs the raw `payload` with one of `secrets`, within `tolerance_s`.

    Pass the body exactly as received (bytes, before any JSON parsing). Raises
    :class:`SignatureError` (one of its subclasses) when the delivery must be
    rejected; returns None when it is authentic and fresh. Comparison is
    constant-time.
    """
    if isinstance(secrets, str):
        secrets = [secrets]
    if not secrets:
        raise ValueError("verify needs at least one secret")
    timestamp, signatures = _parse(header)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise TimestampOutsideTolerance(
            f"signature time {timestamp} is more than {tolerance_s}s from now ({current})"
        )
    matched = False
    for secret in secrets:
        expected = sign(payload, secret, timestamp)
        for candidate in signatures:
            # Evaluate every pair, so the time taken does not say which matched.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise NoMatchingSignature("no signature matches the endpoint's secret")
