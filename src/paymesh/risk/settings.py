"""Settings of risk: the built-in rules, the rules file, velocity storage, reviews."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from paymesh.platform.settings import ServiceSettings

__all__ = ["RiskSettings"]


class RiskSettings(ServiceSettings):
    """The risk service; amount limits are per currency, in minor units."""

    default_port: ClassVar[int] = 50053

    # The built-in rules, used when no rules_file is set: amount limits per currency.
    amount_limits: dict[str, int] = Field(
        default_factory=lambda: {"USD": 1_000_000, "EUR": 1_000_000, "GBP": 1_000_000}
    )
    default_amount_limit: int = 1_000_000
    # The rules file (YAML; see docs/risk.md); empty = the built-in rules above.
    rules_file: str = ""
    # How often the rules file's content checksum is polled for a change, in seconds.
    rules_reload_interval_s: float = Field(default=1.0, gt=0)
    # Where velocity windows and payer history live: empty = the risk database;
    # redis://... = Redis, shared by every replica.
    redis_url: str = ""
    redis_prefix: str = "paymesh:risk"
    # A Redis call (connect or command) that takes longer fails the decision instead
    # of hanging it; payments retries Decide, which is idempotent.
    redis_timeout_s: float = Field(default=2.0, gt=0)
    # Velocity entries are kept this long (at least the longest window), in seconds.
    velocity_retention_s: int = Field(default=2 * 24 * 3600, gt=0)
    # A review still open this long after it was opened gets the default resolution.
    review_timeout_s: float = Field(default=24 * 3600, gt=0)
    review_timeout_resolution: Literal["approve", "decline"] = "decline"
    # How often overdue reviews are looked for (and old velocity entries pruned), in seconds.
    review_sweep_interval_s: float = Field(default=30.0, gt=0)
