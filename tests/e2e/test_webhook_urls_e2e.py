"""Webhook URLs through the real gateway on a platform that refuses private addresses
(as production does): every disguise of loopback, a local or metadata name, a
private IPv6 form, credentials or another scheme is refused at creation with a
422 problem naming the url and why; a public address is accepted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from tests.e2e.conftest import Api, embedded_settings

# Each is refused without asking DNS; nip.io names are resolved (on a machine without
# internet they do not resolve, which is refused too; with internet they are loopback).
DISGUISED = [
    "http://2130706433/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://0/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://0x7f000001/hooks",
    "http://127.0.0.1./",
    "http://localhost/",
    "http://LOCALHOST:8080/hooks",
    "http://localhost./",
    "http://shop.localhost/",
    "http://127.0.0.1.nip.io/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
]


@pytest.fixture
async def strict(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[Api]:
    """The embedded platform with `webhooks.allow_private_addresses` off, logged in."""
    settings = embedded_settings(tmp_path / "var", ports)
    settings.webhooks.allow_private_addresses = False
    platform = Platform(settings)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        api = await Api.login(
            f"http://127.0.0.1:{ports['gateway']}", creds["client_id"], creds["client_secret"]
        )
        try:
            yield api
        finally:
            await api.close()
    finally:
        await platform.stop()


async def _create(api: Api, url: str) -> tuple[int, dict[str, object]]:
    r = await api.http.post(
        "/v1/webhook_endpoints",
        json={"url": url, "events": ["*"]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    return r.status_code, {"content-type": r.headers["content-type"], **r.json()}


async def test_every_disguise_of_a_refused_address_is_refused_at_creation(strict: Api) -> None:
    accepted = []
    for url in DISGUISED:
        status, problem = await _create(strict, url)
        if status != 422:
            accepted.append((url, status))
            continue
        assert problem["content-type"] == "application/problem+json"
        assert problem["code"] == "invalid_request", problem
        detail = str(problem["detail"])
        assert detail.startswith("url refused: host "), (url, detail)
        assert any(
            why in detail
            for why in ("loopback", "unspecified", "local name", "metadata", "link-local",
                        "private", "single-label", "does not resolve", "did not resolve")
        ), (url, detail)  # fmt: skip
    assert accepted == []
    listed = await strict.get("/v1/webhook_endpoints")
    assert listed["data"] == []


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@93.184.216.34/hooks",
        "https://user@93.184.216.34/hooks",
        "ftp://93.184.216.34/hooks",
        "file:///etc/passwd",
        "gopher://93.184.216.34/",
    ],
)
async def test_credentials_and_other_schemes_are_refused_naming_the_url(
    strict: Api, url: str
) -> None:
    status, problem = await _create(strict, url)
    assert status == 422, problem
    assert problem["content-type"] == "application/problem+json"
    # Refused by the gateway's schema (errors names the field) or by the service.
    errors = problem.get("errors") or []
    assert [e["field"] for e in errors] == ["url"] or str(problem["detail"]).startswith("url ")  # type: ignore[index,union-attr]


async def test_a_public_address_is_accepted(strict: Api) -> None:
    status, made = await _create(strict, "https://93.184.216.34/hooks/paymesh")
    assert status == 201, made
    assert made["url"] == "https://93.184.216.34/hooks/paymesh"
