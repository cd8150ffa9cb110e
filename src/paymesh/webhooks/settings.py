"""Settings of webhook delivery: sealing, retries, limits, retention (`webhooks:`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from paymesh.platform.settings import DEFAULT_SECRET, ServiceSettings

__all__ = ["WebhooksSettings"]


class WebhooksSettings(ServiceSettings):
    """The webhooks service: delivery of events to merchants' endpoints."""

    default_port: ClassVar[int] = 50054

    # Derives the key that seals endpoint secrets at rest (AES-GCM); production
    # refuses the default. Changing it makes the stored secrets unreadable.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    # How long a rotated-out secret keeps signing beside the new one, by default.
    rotation_grace_s: float = Field(default=24 * 3600, gt=0, le=7 * 24 * 3600)
    # One attempt (resolve, connect, send, read the response) at most this long.
    request_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # At most this much of a response body is read, then the connection is closed.
    max_response_bytes: int = Field(default=64 * 1024, ge=0)
    # Retries: full jitter over base * 2**(n-1), each step capped at retry_max_delay_s,
    # until retry_window_s after the first attempt; then the delivery has failed.
    retry_base_s: float = Field(default=60.0, gt=0)
    retry_max_delay_s: float = Field(default=6 * 3600, gt=0)
    retry_window_s: float = Field(default=3 * 24 * 3600, gt=0)
    # An endpoint whose attempts all failed for this long is disabled (with an event).
    disable_after_s: float = Field(default=3 * 24 * 3600, gt=0)
    # Concurrent attempts: per endpoint (across replicas) and in one process.
    max_in_flight_per_endpoint: int = Field(default=5, ge=1)
    max_in_flight: int = Field(default=100, ge=1)
    # How often the worker looks for due deliveries when nothing woke it.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Operators only, for development: deliver to loopback/private addresses too.
    allow_private_addresses: bool = False
    # Finished deliveries, received events (what ResendEvent can resend) and the
    # consumer's inbox are kept this long, then pruned (hourly).
    retention_s: float = Field(default=30 * 24 * 3600, gt=0)
