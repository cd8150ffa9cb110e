"""The webhooks settings: defaults, and production refusing the default sealing key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paymesh.settings import Settings


def test_the_defaults_are_the_documented_ones() -> None:
    w = Settings().webhooks
    assert w.listen == "127.0.0.1:50054"
    assert w.rotation_grace_s == 24 * 3600
    assert w.request_timeout_s == 10
    assert w.max_response_bytes == 64 * 1024
    assert w.retry_window_s == 3 * 24 * 3600
    assert w.disable_after_s == 3 * 24 * 3600
    assert w.max_in_flight_per_endpoint == 5
    assert w.allow_private_addresses is False
    assert w.retention_s == 30 * 24 * 3600


def test_production_refuses_the_default_webhooks_secret_key_for_the_webhooks_process() -> None:
    settings = Settings(environment="production", gateway={"secret_key": "g" * 32})
    with pytest.raises(RuntimeError, match=r"webhooks\.secret_key"):
        settings.check_production(["webhooks"])
    settings.check_production(["accounts", "gateway"])  # they never see the webhooks key
    Settings(environment="production", webhooks={"secret_key": "w" * 32}).check_production(
        ["webhooks"]
    )
    Settings().check_production(["webhooks"])  # development


def test_the_secret_key_never_shows_in_the_settings_repr() -> None:
    settings = Settings(webhooks={"secret_key": "very-secret-value"})
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings.model_dump())


def test_nonsense_values_are_refused() -> None:
    for bad in ({"max_in_flight_per_endpoint": 0}, {"request_timeout_s": 0}, {"retry_base_s": -1}):
        with pytest.raises(ValidationError):
            Settings(webhooks=bad)
