"""Settings of the ledger (`accounts:`, PAYMESH_ACCOUNTS__…); composed in paymesh.settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from paymesh.platform.settings import ServiceSettings

__all__ = ["AccountsSettings"]


class AccountsSettings(ServiceSettings):
    """The accounts service (the ledger)."""

    default_port: ClassVar[int] = 50051

    # How often the running service verifies its ledger incrementally (the hash chain
    # since its last check, debits = credits per currency): paymesh_ledger_verify_problems.
    verify_interval_s: float = Field(default=300.0, gt=0)
