"""Reading a Prometheus scrape in tests: the samples of an admin listener's /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


async def scrape(base: str) -> list[Sample]:
    """Every sample `base`/metrics serves (text exposition, parsed by prometheus-client)."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{base}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def matching(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples called `name` whose labels include `labels`."""
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called `name` with `labels` (0 when there is none)."""
    return sum(s.value for s in matching(samples, name, **labels))
