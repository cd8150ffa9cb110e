"""Rate limits on the embedded platform, with a small bucket set through settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from tests.e2e.conftest import Api, embedded_settings

LIMIT = 10


@pytest.fixture
async def limited(
    tmp_path: Path, ports: dict[str, int]
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The embedded platform with a bucket of LIMIT that refills one token per 100 s."""
    settings = embedded_settings(tmp_path / "var", ports)
    settings.gateway.rate_limit_burst = LIMIT
    settings.gateway.rate_limit_per_s = 0.01
    platform = Platform(settings)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield f"http://127.0.0.1:{ports['gateway']}", creds
    finally:
        await platform.stop()


async def test_a_burst_of_ten_times_the_limit_is_refused_beyond_it_without_a_5xx(
    limited: tuple[str, dict[str, str]],
) -> None:
    url, creds = limited
    demo = await Api.login(url, creds["client_id"], creds["client_secret"])
    operator = await Api.login(url, creds["operator_client_id"], creds["operator_client_secret"])
    try:
        answers: list[httpx.Response] = await asyncio.gather(
            *(demo.http.get("/v1/payments") for _ in range(10 * LIMIT))
        )
        statuses = [r.status_code for r in answers]
        assert not [s for s in statuses if s >= 500]
        # The token request took one token from the client's own bucket ("token:" key),
        # not from its API bucket.
        assert statuses.count(200) == LIMIT
        assert statuses.count(429) == 9 * LIMIT
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit"].startswith('"client";r=0;')
        # Another client, in the same moment, is unaffected.
        r = await operator.http.post("/v1/tenants", json={"name": "unaffected"})
        assert r.status_code == 201, r.text
    finally:
        await demo.close()
        await operator.close()
