"""Every metric the Grafana dashboard or an alerting rule names is in a scrape of
the running embedded platform, after a payment went through it."""

from __future__ import annotations

import uuid

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from tests.promql import PROMETHEUS_SERIES, named_metrics, series_names

from .conftest import Api, Running


def scrape() -> str:
    """What the platform's /metrics serves: the default registry's exposition.

    (The same registry the admin listener on :9100 exposes; generated in process
    until that endpoint exists.)
    """
    return prometheus_client.generate_latest().decode()


def exposed(text: str) -> set[str]:
    """The series names a scrape exposes. A family with no samples yet is printed as
    its HELP and TYPE lines only: it counts, under every name it will have."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= series_names(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names


async def test_every_metric_a_dashboard_or_rule_names_is_in_a_scrape_of_the_platform(
    embedded: Running,
) -> None:
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        customer = (await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}))["id"]
        merchant = (await api.post("/v1/accounts", {"currency": "USD", "type": "merchant"}))["id"]
        await api.post(
            "/v1/topups", {"account_id": customer, "amount": 5_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )  # fmt: skip
        payment = await api.post(
            "/v1/payments",
            {"payer_account_id": customer, "payee_account_id": merchant, "amount": 1_000,
             "currency": "USD", "capture_method": "automatic"},
            key=str(uuid.uuid4()),
        )  # fmt: skip
        assert payment["status"] == "succeeded"
    finally:
        await api.close()

    text = scrape()
    names = exposed(text)
    used = named_metrics()
    assert len(used) > 20
    missing = {
        name: sorted(where)
        for name, where in used.items()
        if name not in names and name not in PROMETHEUS_SERIES
    }
    assert not missing, missing
    # The check looks at the scrape, not at a list of its own: a name the scrape
    # lacks is reported.
    assert "paymesh_not_a_metric_total" not in names
