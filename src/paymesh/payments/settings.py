"""Settings of the payments service and its simulated bank (`payments:`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from paymesh.platform.settings import ServiceSettings

__all__ = ["PaymentsSettings"]


class PaymentsSettings(ServiceSettings):
    """The payments service."""

    default_port: ClassVar[int] = 50052

    # How often unfinished sagas are looked for and resumed, in seconds.
    resume_interval_s: float = 2.0
    # An authorised payment not captured within this many seconds is canceled.
    authorization_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    # A saga step still failing transiently this many seconds after it was first
    # recorded is given up safely (voided, or looked up in the ledger; never guessed).
    step_deadline_s: float = Field(default=15 * 60, gt=0)
    # The simulated bank behind top-ups and payouts: seconds per call, the share
    # of requests it declines, and the share whose answer it loses (a timeout).
    bank_latency_s: float = Field(default=0.0, ge=0)
    bank_failure_rate: float = Field(default=0.0, ge=0, le=1)
    bank_timeout_rate: float = Field(default=0.0, ge=0, le=1)
    # How often tenants' settlement schedules are checked for a run that is due, in seconds.
    settlement_schedule_interval_s: float = Field(default=30.0, gt=0)
    # Reconciliation: how far a bank line may differ from its payout (minor units), and how
    # many days after the payout was made the bank may book it, and still match.
    reconciliation_amount_tolerance: int = Field(default=0, ge=0)
    reconciliation_date_tolerance_days: int = Field(default=3, ge=0, le=60)
