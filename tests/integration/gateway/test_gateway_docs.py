"""The API documentation pages work without the internet: /docs (Swagger UI) and /redoc
(ReDoc) load only assets the gateway serves itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments

BASE = "http://gateway.test"
# Every URL a page makes the browser load: scripts, stylesheets, icons, the spec.
_LOADED = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")
_CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


@pytest.fixture
async def http(sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(sqlite_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=sqlite_url))
    app = create_app(
        settings=settings,
        store=SqlGatewayStore(db),
        accounts=FakeAccounts(),
        payments=FakePayments(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client
    await app.state.gateway.limiter.aclose()
    await db.dispose()


def _loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in _LOADED.findall(html)]


@pytest.mark.parametrize(("page", "marker"), [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
async def test_a_docs_page_loads_only_same_origin_assets_that_the_gateway_serves(
    http: httpx.AsyncClient, page: str, marker: str
) -> None:
    r = await http.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert marker in r.text
    urls = _loaded_urls(r.text)
    assert "/openapi.json" in urls
    assert any(u.endswith(".js") for u in urls), urls
    assert "googleapis" not in r.text
    for url in urls:
        absolute = urljoin(BASE + page, url)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, f"{page} loads {url}"
        asset = await http.get(absolute)
        assert asset.status_code == 200, url
        suffix = Path(urlsplit(absolute).path).suffix
        content_type = asset.headers["content-type"]
        assert content_type.startswith(_CONTENT_TYPES[suffix]), (url, content_type)
        assert len(asset.content) > 100, url


async def test_the_vendored_assets_ship_with_their_licences(http: httpx.AsyncClient) -> None:
    for path, words in [
        ("/docs/assets/swagger-ui/LICENSE", "Apache License"),
        ("/docs/assets/redoc/LICENSE", "MIT License"),
    ]:
        r = await http.get(path)
        assert r.status_code == 200
        assert words in r.text
