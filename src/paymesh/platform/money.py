"""Money is an integer of minor units plus an upper-case ISO 4217 code."""

from __future__ import annotations

__all__ = ["CURRENCIES", "MAX_AMOUNT", "is_valid_amount", "is_valid_currency"]

# ISO 4217 codes in use, with their minor-unit exponent.
CURRENCIES: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KES": 2, "KRW": 0, "KWD": 3, "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2,
    "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2,
    "RUB": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2,
    "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip

# Large enough for any real payment, small enough that sums of many fit in
# a signed 64-bit column.
MAX_AMOUNT = 10**15


def is_valid_currency(code: str) -> bool:
    """True for a known upper-case ISO 4217 code."""
    return code in CURRENCIES


def is_valid_amount(amount: int) -> bool:
    """True for a positive integer amount within bounds."""
    return isinstance(amount, int) and not isinstance(amount, bool) and 0 < amount <= MAX_AMOUNT
