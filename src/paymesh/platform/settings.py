"""One typed settings object per process.

Layers, lowest first: defaults < YAML file (``PAYMESH_CONFIG_FILE``) <
environment (``PAYMESH_…``, nested with ``__``) < secret files
(``PAYMESH_SECRETS_DIR``). This module is the only place that reads the
environment, with one exception: when tracing is on (``OTEL_TRACES_EXPORTER``,
read here), the OpenTelemetry SDK reads its own standard variables
(``OTEL_EXPORTER_OTLP_*``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "DEFAULT_SECRET",
    "AccountsSettings",
    "GatewaySettings",
    "KafkaSettings",
    "ServiceSettings",
    "Settings",
    "TlsSettings",
    "WebhooksSettings",
    "load_settings",
]

DEFAULT_SECRET = "change-me-in-production"  # noqa: S105 - the marker of an unset secret

SERVICES = ("accounts", "payments", "risk", "webhooks", "gateway")
DEFAULT_PORTS = {"accounts": 50051, "payments": 50052, "risk": 50053, "webhooks": 50054}
# Every service's default admin listener: the embedded platform serves them all on one.
ADMIN_LISTEN = "127.0.0.1:9100"
ADMIN_LISTEN_PATTERN = r"^$|^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$"  # "" or host:port


class ServiceSettings(BaseModel):
    """Where a gRPC service listens, where its database is, how others reach it."""

    database_url: str = ""
    listen: str = ""
    # How clients reach this service: "127.0.0.1:50051" or "dns:///accounts:50051".
    target: str = ""
    # The admin HTTP listener (/metrics, /healthz, /readyz); empty: none. Services of one
    # process that name the same address share one listener (`paymesh up`: all five).
    admin_listen: str = Field(default=ADMIN_LISTEN, pattern=ADMIN_LISTEN_PATTERN)


class AccountsSettings(ServiceSettings):
    """The accounts service (the ledger)."""

    # How often the running service verifies its ledger incrementally (the hash chain
    # since its last check, debits = credits per currency): paymesh_ledger_verify_problems.
    verify_interval_s: float = Field(default=300.0, gt=0)


class RiskSettings(ServiceSettings):
    """The risk service; amount limits are per currency, in minor units."""

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


class WebhooksSettings(ServiceSettings):
    """The webhooks service: delivery of events to merchants' endpoints."""

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


class PaymentsSettings(ServiceSettings):
    """The payments service."""

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


class GatewaySettings(BaseModel):
    """The public REST gateway."""

    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # The admin HTTP listener (/metrics, /healthz, /readyz); empty: none.
    admin_listen: str = Field(default=ADMIN_LISTEN, pattern=ADMIN_LISTEN_PATTERN)
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
    request_timeout_s: float = Field(default=30.0, gt=0)
    # HTTPS: a PEM certificate (chain) and its key; both empty = plain HTTP.
    tls_cert_file: str = ""
    tls_key_file: str = ""


class TlsSettings(BaseModel):
    """Mutual TLS between services: this process's certificate and key (used as server
    AND client certificate) and the CA that every peer's certificate must be signed by.
    All three empty = plaintext gRPC (the embedded default)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        """Whether gRPC between services runs over mutual TLS."""
        return bool(self.ca_file or self.cert_file or self.key_file)

    @model_validator(mode="after")
    def _all_or_none(self) -> TlsSettings:
        if self.enabled and not (self.ca_file and self.cert_file and self.key_file):
            raise ValueError("tls: set ca_file, cert_file and key_file together, or none")
        return self


class KafkaSettings(BaseModel):
    """The distributed shape's event bus; empty bootstrap_servers means in-process."""

    bootstrap_servers: str = ""
    partitions: int = 3
    session_timeout_ms: int = 45_000
    max_poll_interval_ms: int = 300_000
    # Prefixed to every topic and consumer group: several installations (or test
    # platforms) can share one Kafka cluster without seeing each other's events.
    namespace: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    # A record whose handler keeps failing goes to the dead-letter topic "<topic>.dlq"
    # (namespaced like its topic) after this many attempts, with a backoff that starts at
    # retry_backoff_s and doubles up to retry_backoff_max_s between them. Errors that say
    # a database, Redis or peer is unreachable are retried without limit instead. A
    # consumer that dies is restarted after restart_backoff_s (doubling likewise).
    # The embedded bus follows the same settings (see docs/kafka-dlq.md).
    max_attempts: int = Field(default=10, ge=1, le=1000)
    retry_backoff_s: float = Field(default=0.5, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    restart_backoff_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _backoff_bounds(self) -> KafkaSettings:
        if self.retry_backoff_s > self.retry_backoff_max_s:
            raise ValueError("kafka: retry_backoff_s must not exceed retry_backoff_max_s")
        return self


class _YamlFileSource(PydanticBaseSettingsSource):
    """Settings from the YAML file named by PAYMESH_CONFIG_FILE, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("PAYMESH_CONFIG_FILE")
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the settings file must hold a mapping")
        return data


class _SecretFilesSource(PydanticBaseSettingsSource):
    """Secret files in PAYMESH_SECRETS_DIR: one value per file, named like its
    environment variable (``paymesh_gateway__secret_key``), as Kubernetes
    mounts a Secret. A value that looks like JSON (an object or a list) is parsed."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get("PAYMESH_SECRETS_DIR")
        if not directory or not Path(directory).is_dir():
            return {}
        found: dict[str, Any] = {}
        for path in sorted(Path(directory).iterdir()):
            name = path.name.lower()
            if not path.is_file() or not name.startswith("paymesh_"):
                continue
            value: Any = path.read_text().strip()
            if value[:1] in "{[":
                value = json.loads(value)
            *parents, leaf = name.removeprefix("paymesh_").split("__")
            node = found
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return found


class Settings(BaseSettings):
    """Everything a paymesh process is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="PAYMESH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True
    accounts: AccountsSettings = Field(default_factory=AccountsSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    # Deadline for one gRPC call between services, in seconds.
    rpc_deadline_s: float = 5.0
    # How long a starting process waits for its database to answer (a restart of
    # PostgreSQL, a pod scheduled before its database) before it gives up, in seconds.
    startup_timeout_s: float = Field(default=60.0, ge=0)
    # OpenTelemetry traces, by the standard variables (docs/operations.md, "Tracing"):
    # OTEL_TRACES_EXPORTER=otlp exports every service's spans over OTLP/HTTP; unset or
    # "none" (or OTEL_SDK_DISABLED=true) turns tracing off. Only the http/protobuf
    # protocol is shipped.
    otel_traces_exporter: Literal["otlp", "none"] = Field(
        default="none",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
    )
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled")
    )
    otel_exporter_otlp_protocol: str = Field(
        default="http/protobuf",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "otel_exporter_otlp_protocol",
        ),
    )

    @property
    def tracing(self) -> bool:
        """Whether services export traces (OTEL_TRACES_EXPORTER=otlp, SDK not disabled)."""
        return self.otel_traces_exporter == "otlp" and not self.otel_sdk_disabled

    @field_validator("otel_traces_exporter", "otel_exporter_otlp_protocol", mode="before")
    @classmethod
    def _otel_value(cls, value: object, info: ValidationInfo) -> object:
        # As the SDK reads them: case and surrounding blanks do not matter; empty = unset.
        if isinstance(value, str):
            unset = "none" if info.field_name == "otel_traces_exporter" else "http/protobuf"
            return value.strip().lower() or unset
        return value

    @model_validator(mode="after")
    def _otel_protocol(self) -> Settings:
        protocol = self.otel_exporter_otlp_protocol
        if self.tracing and protocol != "http/protobuf":
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: secrets > environment > file > defaults.
        return (
            init_settings,
            _SecretFilesSource(settings_cls),
            env_settings,
            _YamlFileSource(settings_cls),
        )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        """Embedded defaults: a SQLite file per service under var/, fixed local ports."""
        for name, port in DEFAULT_PORTS.items():
            svc: ServiceSettings = getattr(self, name)
            if not svc.database_url:
                svc.database_url = f"sqlite+aiosqlite:///{self.var_dir / f'{name}.db'}"
            if not svc.listen:
                svc.listen = f"127.0.0.1:{port}"
            if not svc.target:
                svc.target = svc.listen
        if not self.gateway.database_url:
            self.gateway.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'gateway.db'}"
        return self

    def check_production(self, services: Iterable[str]) -> None:
        """Refuse to run `services` outside development with a default secret.

        Only the processes that use a secret are checked for it, so a secret
        reaches no pod that does not need it.
        """
        default = self.gateway.secret_key.get_secret_value() == DEFAULT_SECRET
        if self.environment == "production" and default and "gateway" in services:
            raise RuntimeError(
                "refusing to start in production with the default gateway.secret_key"
            )
        default_webhooks = self.webhooks.secret_key.get_secret_value() == DEFAULT_SECRET
        if self.environment == "production" and default_webhooks and "webhooks" in services:
            raise RuntimeError(
                "refusing to start in production with the default webhooks.secret_key"
            )


def load_settings(**overrides: Any) -> Settings:
    """Build the process's settings from every layer, with overrides on top."""
    return Settings(**overrides)
