"""One typed settings object per process: the platform's part of it.

Each service owns its section (``paymesh/<service>/settings.py``: a
:class:`SectionSettings`); :mod:`paymesh.settings` composes the sections with
:class:`PlatformSettings`, which holds what every process shares (Kafka, TLS,
deadlines, tracing) and fills the embedded defaults of every section. A service
reads its own section with :meth:`PlatformSettings.section` and reaches another
service with :meth:`PlatformSettings.peer`, so no service imports another's settings.

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
from typing import Any, ClassVar, Literal, Self, TypeVar

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
    "ADMIN_LISTEN",
    "ADMIN_LISTEN_PATTERN",
    "DEFAULT_SECRET",
    "KafkaSettings",
    "PlatformSettings",
    "SectionSettings",
    "ServiceSettings",
    "TlsSettings",
]

DEFAULT_SECRET = "change-me-in-production"  # noqa: S105 - the marker of an unset secret

# Every service's default admin listener: the embedded platform serves them all on one.
ADMIN_LISTEN = "127.0.0.1:9100"
ADMIN_LISTEN_PATTERN = r"^$|^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$"  # "" or host:port


class SectionSettings(BaseModel):
    """One service's section of the settings: its database and admin listener, and
    whatever else the service declares in its own ``settings.py``."""

    # The section's key in the settings ("accounts": the file's `accounts:`, the
    # environment's PAYMESH_ACCOUNTS__…): the package that declares it.
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        package = cls.__module__.split(".")
        if len(package) == 3 and package[0] == "paymesh" and package[2] == "settings":
            cls.name = package[1]

    # Empty: a SQLite file under var_dir, named after the section.
    database_url: str = ""
    # The admin HTTP listener (/metrics, /healthz, /readyz); empty: none. Services of one
    # process that name the same address share one listener (`paymesh up`: all five).
    admin_listen: str = Field(default=ADMIN_LISTEN, pattern=ADMIN_LISTEN_PATTERN)


class ServiceSettings(SectionSettings):
    """A gRPC service's section: where it listens and how others reach it."""

    # The embedded shape's port (listen and target default to 127.0.0.1:<port>).
    default_port: ClassVar[int] = 0

    listen: str = ""
    # How clients reach this service: "127.0.0.1:50051" or "dns:///accounts:50051".
    target: str = ""


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


S = TypeVar("S", bound=SectionSettings)


class PlatformSettings(BaseSettings):
    """What every paymesh process shares; :class:`paymesh.settings.Settings` adds the
    services' sections (each a :class:`SectionSettings` field named after it)."""

    model_config = SettingsConfigDict(
        env_prefix="PAYMESH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    # Deadline for one gRPC call between services, in seconds.
    rpc_deadline_s: float = 5.0
    # The event loop of `paymesh up` and `paymesh serve`: uvloop (libuv; cheaper task
    # switches, callbacks from threads and socket I/O: see docs/performance.md) or the
    # standard library's asyncio loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
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
    def _otel_protocol(self) -> Self:
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

    def sections(self) -> dict[str, SectionSettings]:
        """Every service's section, by name."""
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SectionSettings)
        }

    def section(self, kind: type[S]) -> S:
        """This process's section of type `kind` (``settings.section(AccountsSettings)``)."""
        value = getattr(self, kind.name, None)
        if not isinstance(value, kind):
            raise LookupError(f"the settings have no {kind.name!r} section of {kind.__name__}")
        return value

    def peer(self, name: str) -> ServiceSettings:
        """How to reach the gRPC service `name` (its ``target``; ``listen``)."""
        value = getattr(self, name, None)
        if not isinstance(value, ServiceSettings):
            raise LookupError(f"no gRPC service {name!r} in the settings")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        """Embedded defaults: a SQLite file per service under var/, fixed local ports."""
        for name, section in self.sections().items():
            if not section.database_url:
                section.database_url = f"sqlite+aiosqlite:///{self.var_dir / f'{name}.db'}"
            if isinstance(section, ServiceSettings):
                if not section.listen:
                    section.listen = f"127.0.0.1:{section.default_port}"
                if not section.target:
                    section.target = section.listen
        return self

    def check_production(self, services: Iterable[str]) -> None:
        """Refuse to run `services` outside development with a default secret.

        Only the processes that use a secret are checked for it, so a secret
        reaches no pod that does not need it.
        """
        if self.environment != "production":
            return
        sections = self.sections()
        for name in services:
            section = sections.get(name)
            if section is None:
                continue
            for field in type(section).model_fields:
                value = getattr(section, field)
                if isinstance(value, SecretStr) and value.get_secret_value() == DEFAULT_SECRET:
                    raise RuntimeError(
                        f"refusing to start in production with the default {name}.{field}"
                    )
