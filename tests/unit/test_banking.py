"""Bank details (platform/banking.py): IBAN, BIC and holder's name validated and normalised
one way for the gateway and the accounts service."""

from __future__ import annotations

import pytest

from paymesh.platform.banking import (
    BankAccount,
    InvalidBankDetails,
    bank_account,
    check_name,
    normalise_bic,
    normalise_iban,
)

IBAN = "DE89370400440532013000"
BIC = "COBADEFFXXX"


def test_valid_details_are_normalised() -> None:
    got = bank_account(" de89 3704 0044 0532 0130 00", "cobadeff", "  Example GmbH ")
    assert got == BankAccount(iban=IBAN, bic="COBADEFF", name="Example GmbH")
    assert normalise_iban("GB82 WEST 1234 5698 7654 32") == "GB82WEST12345698765432"
    assert normalise_bic("COBADEFFXXX") == BIC
    assert check_name("Ünïcödé Ltd — 株式会社") == "Ünïcödé Ltd — 株式会社"
    assert check_name("x" * 70) == "x" * 70


@pytest.mark.parametrize(
    ("iban", "why"),
    [
        ("DE89370400440532013001", "check digits"),
        ("DE8937040044053201300", "length"),
        ("XX89370400440532013000", "country"),
        ("", "ASCII letters and digits"),
        ("DE89-3704-0044-0532-0130-00", "ASCII letters and digits"),
        ("DE\u0668\u0669370400440532013000", "ASCII letters and digits"),  # Arabic digits
        ("DE89\t370400440532013000", "ASCII letters and digits"),
        ("D" * 35, "at most 34"),
        ("D" * 65, "at most 64"),
        ("1234", "format"),
    ],
)
def test_invalid_ibans_name_the_field(iban: str, why: str) -> None:
    with pytest.raises(InvalidBankDetails, match=why) as caught:
        bank_account(iban, BIC, "Example")
    assert caught.value.field == "iban"
    assert str(caught.value).startswith("iban ")


@pytest.mark.parametrize(
    ("bic", "why"),
    [
        ("COBADEF", "8 or 11"),
        ("COBADEFFXX", "8 or 11"),
        ("COBAXXFF", "unknown country"),
        ("COBADE!F", "ASCII"),
        ("", "ASCII"),
        ("CHASUS33", "a bank in US, but the IBAN is of DE"),
    ],
)
def test_invalid_bics_name_the_field(bic: str, why: str) -> None:
    with pytest.raises(InvalidBankDetails, match=why) as caught:
        bank_account(IBAN, bic, "Example")
    assert caught.value.field == "bic"


def test_a_bic_of_a_country_sharing_the_ibans_scheme_is_accepted() -> None:
    # Jersey banks have JE BICs and GB IBANs; Åland's bank a FI BIC and AX IBANs.
    assert bank_account("GB82WEST12345698765432", "RBOSJESH", "Jersey Ltd").bic == "RBOSJESH"
    assert bank_account("FR7630006000011234567890189", "BNPAMCM1", "Monaco SA").bic == "BNPAMCM1"


@pytest.mark.parametrize("name", ["", "   ", "x" * 71, "line\nbreak", "nul\x00", "\udc00"])
def test_invalid_names_name_the_field(name: str) -> None:
    with pytest.raises(InvalidBankDetails) as caught:
        bank_account(IBAN, BIC, name)
    assert caught.value.field == "name"


def test_the_first_invalid_field_is_the_one_named() -> None:
    with pytest.raises(InvalidBankDetails) as caught:
        bank_account("nope", "nope", "")
    assert caught.value.field == "iban"
