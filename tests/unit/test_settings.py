"""Settings: the layers in order, and no production start with a default secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paymesh.launcher import Platform
from paymesh.platform.settings import DEFAULT_SECRET
from paymesh.settings import Settings


def test_a_gateway_refuses_to_start_in_production_with_the_default_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMESH_ENVIRONMENT", "production")
    settings = Settings()
    assert settings.gateway.secret_key.get_secret_value() == DEFAULT_SECRET
    with pytest.raises(RuntimeError, match=r"gateway\.secret_key"):
        settings.check_production(["gateway"])


def test_services_that_hold_no_secret_start_in_production_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMESH_ENVIRONMENT", "production")
    Settings().check_production(["accounts", "payments", "risk"])


def test_a_production_gateway_with_its_own_secret_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMESH_ENVIRONMENT", "production")
    monkeypatch.setenv("PAYMESH_GATEWAY__SECRET_KEY", "a-real-secret-from-a-vault")
    Settings().check_production(["gateway"])


async def test_the_platform_checks_before_it_touches_a_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PAYMESH_ENVIRONMENT", "production")
    platform = Platform(Settings(var_dir=tmp_path), services=("gateway",))
    with pytest.raises(RuntimeError, match="default"):
        await platform.start()
    assert not (tmp_path / "gateway.db").exists()


def test_layers_go_defaults_then_file_then_environment_then_secret_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "paymesh.yaml"
    config.write_text(
        "log_level: DEBUG\nrpc_deadline_s: 7\ngateway:\n  port: 9001\n  issuer: from-file\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # One value per file, as Kubernetes mounts a Secret.
    (secrets / "paymesh_gateway__secret_key").write_text("from-secret-file\n")
    (secrets / "paymesh_gateway__port").write_text("9003")
    (secrets / "paymesh_risk__amount_limits").write_text('{"USD": 5}')
    monkeypatch.setenv("PAYMESH_CONFIG_FILE", str(config))
    monkeypatch.setenv("PAYMESH_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("PAYMESH_RPC_DEADLINE_S", "9")
    monkeypatch.setenv("PAYMESH_GATEWAY__PORT", "9002")
    monkeypatch.setenv("PAYMESH_GATEWAY__SECRET_KEY", "from-environment")
    s = Settings()
    assert s.log_level == "DEBUG"  # file over default
    assert s.rpc_deadline_s == 9  # environment over file
    assert s.gateway.issuer == "from-file"
    assert s.gateway.port == 9003  # secret file over environment
    assert s.gateway.secret_key.get_secret_value() == "from-secret-file"
    assert s.risk.amount_limits == {"USD": 5}


def test_every_service_defaults_to_one_admin_listener_and_a_bad_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("accounts", "payments", "risk", "webhooks", "gateway"):
        monkeypatch.delenv(f"PAYMESH_{name.upper()}__ADMIN_LISTEN", raising=False)
    settings = Settings()
    for name in ("accounts", "payments", "risk", "webhooks", "gateway"):
        assert getattr(settings, name).admin_listen == "127.0.0.1:9100", name
    monkeypatch.setenv("PAYMESH_RISK__ADMIN_LISTEN", "")
    assert Settings().risk.admin_listen == ""  # none
    monkeypatch.setenv("PAYMESH_RISK__ADMIN_LISTEN", "[::1]:9101")
    assert Settings().risk.admin_listen == "[::1]:9101"
    for bad in ("9100", "0.0.0.0", "host:port", "a b:9100"):
        monkeypatch.setenv("PAYMESH_RISK__ADMIN_LISTEN", bad)
        with pytest.raises(ValidationError, match="admin_listen"):
            Settings()


def test_each_service_owns_its_section_and_the_platform_fills_its_defaults(
    tmp_path: Path,
) -> None:
    from paymesh.accounts.settings import AccountsSettings
    from paymesh.gateway.settings import GatewaySettings
    from paymesh.risk.settings import RiskSettings

    settings = Settings(var_dir=tmp_path, risk={"listen": "127.0.0.1:6000"})
    accounts = settings.section(AccountsSettings)
    assert accounts is settings.accounts
    assert accounts.database_url == f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"
    assert accounts.listen == accounts.target == "127.0.0.1:50051"
    assert settings.section(GatewaySettings).database_url.endswith("gateway.db")
    # A listen address set by hand is also how peers reach the service, unless told.
    assert settings.peer("risk").target == "127.0.0.1:6000"
    assert settings.section(RiskSettings).default_amount_limit == 1_000_000
    with pytest.raises(LookupError):
        settings.peer("gateway")  # the gateway is no gRPC peer
    with pytest.raises(LookupError):
        settings.peer("ledger")


def test_the_platform_defines_no_service_section() -> None:
    import paymesh.platform.settings as platform_settings

    own = {
        name
        for name, value in vars(platform_settings).items()
        if isinstance(value, type) and value.__module__ == platform_settings.__name__
    }
    services = {"Accounts", "Payments", "Risk", "Webhooks", "Gateway"}
    assert not {f"{s}Settings" for s in services} & own
    for service in services:
        module = __import__(f"paymesh.{service.lower()}.settings", fromlist=["x"])
        section = getattr(module, f"{service}Settings")
        assert section.name == service.lower()
        assert issubclass(section, platform_settings.SectionSettings)


def test_a_default_secret_in_any_section_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(environment="production", gateway={"secret_key": "a-real-one"})
    settings.check_production(["gateway", "accounts", "payments", "risk"])
    with pytest.raises(RuntimeError, match=r"default webhooks\.secret_key"):
        settings.check_production(["webhooks"])
