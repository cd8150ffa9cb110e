"""Settings of the public REST gateway: HTTP, tokens, limits, admission, the console, TLS."""

from __future__ import annotations

from pydantic import Field, SecretStr

from paymesh.platform.settings import DEFAULT_SECRET, SectionSettings

__all__ = ["GatewaySettings"]


class GatewaySettings(SectionSettings):
    """The public REST gateway."""

    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str = "paymesh"
    audience: str = "paymesh-api"
    token_ttl_s: int = Field(default=600, ge=300, le=900)
    # Signs nothing by itself; guards the local key store in production.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    # How long idempotency records are kept, in seconds.
    idempotency_ttl_s: int = 24 * 3600
    # Abuse limits: a token bucket per API client (refill per second, capacity).
    rate_limit_per_s: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Where the buckets live: empty = in this process; redis://... = shared by every gateway.
    redis_url: str = ""
    # Failed client-credential attempts on the token endpoint: a bucket per remote address
    # and one per client_id (capacity, refill per second), charged before the secret is
    # hashed and refunded on success; empty: 429 `rate_limited` without hashing anything.
    auth_failure_burst: int = Field(default=10, ge=1)
    auth_failure_per_s: float = Field(default=0.1, gt=0)
    # Client secrets are hashed (scrypt, ~0.1 s of CPU each) on this many threads, never on
    # the event loop (one leaves the loop a core of its own on a small machine); at most
    # hash_queue more requests wait for one, the rest get 429 `overloaded`.
    hash_threads: int = Field(default=1, ge=1)
    hash_queue: int = Field(default=32, ge=0)
    # Money-moving POSTs at work at once in this gateway; up to admission_queue more wait,
    # each at most admission_wait_s (and at most half of request_timeout_s), and are then
    # refused before any work: 429 `overloaded` with Retry-After. An admitted request's
    # service calls may take the rest of request_timeout_s (less 1 s), not rpc_deadline_s.
    admission_max_in_flight: int = Field(default=32, ge=1)
    admission_queue: int = Field(default=512, ge=0)
    admission_wait_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # A bank statement (POST /v1/bank_statements) may be larger: up to this, under gRPC's
    # 4 MiB message limit on its way to the payments service.
    max_statement_bytes: int = Field(default=3 * 1024 * 1024, ge=1024, le=3_900_000)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # The operator console (/console): a session ends after this long without a request,
    # and after this long in all; this many wrong passwords in a row lock a user's
    # sign-in for console_lock_s.
    console_idle_timeout_s: float = Field(default=1800.0, gt=0)
    console_session_max_s: float = Field(default=12 * 3600.0, gt=0)
    console_lock_attempts: int = Field(default=5, ge=1)
    console_lock_s: float = Field(default=900.0, gt=0)
    # Mark the console's cookies Secure even when the gateway itself speaks plain HTTP
    # (behind a proxy that terminates TLS); over HTTPS they always are.
    console_secure_cookies: bool = False
    # HTTPS: a PEM certificate (chain) and its key; both empty = plain HTTP.
    tls_cert_file: str = ""
    tls_key_file: str = ""
