"""The settings of a paymesh process: the platform's, composed with every service's
own section.

A service declares its settings in ``paymesh/<service>/settings.py``; adding a
setting edits that file only. This composition root (like :mod:`paymesh.cli` and
:mod:`paymesh.launcher`, it may know every service) names the sections; the
platform (:class:`~paymesh.platform.settings.PlatformSettings`) reads the layers and
fills the embedded defaults of each. Services read their own section through
``settings.section(<Their>Settings)`` and never import this module.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from paymesh.accounts.settings import AccountsSettings
from paymesh.gateway.settings import GatewaySettings
from paymesh.payments.settings import PaymentsSettings
from paymesh.platform.settings import PlatformSettings
from paymesh.risk.settings import RiskSettings
from paymesh.webhooks.settings import WebhooksSettings

__all__ = ["Settings", "load_settings"]


class Settings(PlatformSettings):
    """Everything a paymesh process is configured with."""

    accounts: AccountsSettings = Field(default_factory=AccountsSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)


def load_settings(**overrides: Any) -> Settings:
    """Build the process's settings from every layer, with overrides on top."""
    return Settings(**overrides)
