"""Bank details of an account (for settlement payouts by bank file): IBAN, BIC and the
holder's name, validated and normalised one way for every service.

The gateway checks them at the edge (a 422 naming the field) and the accounts service
checks them again before it stores them, with the same functions:

- ``iban``: spaces removed, upper case; ASCII letters and digits only, then the
  country's length and format and the ISO 7064 mod 97-10 check digits (schwifty);
- ``bic``: spaces removed, upper case; 8 or 11 characters of the ISO 9362 format
  (``AAAA BB CC [DDD]``, as ISO 20022's BICFIIdentifier) with a known country (schwifty);
  its country must be the IBAN's, or one sharing the IBAN's scheme (:data:`SAME_SCHEME`:
  Jersey, Guernsey and the Isle of Man use GB IBANs, the French overseas territories
  and Monaco French ones, Åland Finnish ones);
- ``name``: surrounding whitespace removed, then 1..70 printable characters (ISO 20022's
  Max70Text; any script, no control or line-break characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

__all__ = [
    "BIC_LENGTHS",
    "IBAN_MAX_LENGTH",
    "NAME_MAX_LENGTH",
    "RAW_MAX_LENGTH",
    "SAME_SCHEME",
    "BankAccount",
    "InvalidBankDetails",
    "bank_account",
    "check_bic_country",
    "check_name",
    "normalise_bic",
    "normalise_iban",
]

IBAN_MAX_LENGTH = 34
BIC_LENGTHS = (8, 11)
NAME_MAX_LENGTH = 70  # ISO 20022 Max70Text
# The longest text taken before normalising (an IBAN written in groups of four has spaces).
RAW_MAX_LENGTH = 64

# Countries whose banks use another country's IBAN scheme: a BIC of any country of a
# group goes with an IBAN of any country of the same group.
SAME_SCHEME: tuple[frozenset[str], ...] = (
    frozenset({"GB", "JE", "GG", "IM"}),
    frozenset({"FR", "MC", "GF", "GP", "MQ", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF", "TF"}),
    frozenset({"FI", "AX"}),
)

_ALNUM = re.compile(r"[A-Z0-9]+", re.ASCII)
_SPACES = re.compile(r" +")


@dataclass(frozen=True)
class BankAccount:
    """An account's bank details, normalised: IBAN without spaces and upper case, BIC upper
    case, the holder's name as it appears on the bank file."""

    iban: str
    bic: str
    name: str


class InvalidBankDetails(ValueError):
    """A bank detail is invalid: `field` (``iban``, ``bic`` or ``name``) and why; the message
    names the field (``"iban is not a valid IBAN: wrong check digits"``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def _compact(value: str, field: str) -> str:
    if len(value) > RAW_MAX_LENGTH:
        raise InvalidBankDetails(field, f"must be at most {RAW_MAX_LENGTH} characters")
    compact = _SPACES.sub("", value).upper()
    if not _ALNUM.fullmatch(compact):
        raise InvalidBankDetails(field, "must be ASCII letters and digits (spaces are ignored)")
    return compact


def normalise_iban(value: str) -> str:
    """`value` as an IBAN without spaces, upper case; :class:`InvalidBankDetails` when it is
    not one (wrong characters, unknown country, wrong length or format, bad check digits)."""
    compact = _compact(value, "iban")
    if len(compact) > IBAN_MAX_LENGTH:
        raise InvalidBankDetails("iban", f"must be at most {IBAN_MAX_LENGTH} characters")
    try:
        return str(IBAN(compact))
    except SchwiftyException as exc:
        raise InvalidBankDetails("iban", f"is not a valid IBAN: {_reason(exc)}") from None


def normalise_bic(value: str) -> str:
    """`value` as a BIC, upper case; :class:`InvalidBankDetails` when it is not one."""
    compact = _compact(value, "bic")
    if len(compact) not in BIC_LENGTHS:
        raise InvalidBankDetails("bic", "must be 8 or 11 characters")
    try:
        return str(BIC(compact))
    except SchwiftyException as exc:
        raise InvalidBankDetails("bic", f"is not a valid BIC: {_reason(exc)}") from None


def check_name(value: str) -> str:
    """The holder's name without surrounding whitespace: 1..70 printable characters."""
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise InvalidBankDetails("name", f"must be 1 to {NAME_MAX_LENGTH} characters")
    if not name.isprintable():
        raise InvalidBankDetails("name", "must be printable characters (no control characters)")
    return name


def check_bic_country(iban: str, bic: str) -> None:
    """Refuse (as a ``bic`` problem) a BIC of another country than the normalised `iban`."""
    iban_country, bic_country = iban[:2], bic[4:6]
    if iban_country == bic_country or any(
        {iban_country, bic_country} <= group for group in SAME_SCHEME
    ):
        return
    raise InvalidBankDetails(
        "bic", f"is a bank in {bic_country}, but the IBAN is of {iban_country}"
    )


def bank_account(iban: str, bic: str, name: str) -> BankAccount:
    """The bank details, validated and normalised (the first invalid one raises)."""
    account = BankAccount(iban=normalise_iban(iban), bic=normalise_bic(bic), name=check_name(name))
    check_bic_country(account.iban, account.bic)
    return account


def _reason(exc: SchwiftyException) -> str:
    # schwifty's messages repeat the value; the field is named by the caller already.
    kind = type(exc).__name__
    return {
        "InvalidLength": "wrong length",
        "InvalidStructure": "wrong format",
        "InvalidCountryCode": "unknown country code",
        "InvalidChecksumDigits": "wrong check digits",
        "InvalidBankCode": "unknown bank code",
    }.get(kind, "invalid")
