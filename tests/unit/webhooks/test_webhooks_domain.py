"""The webhooks rules: which URLs and addresses may be called, which events an endpoint
gets, when to retry, when to give up, when to disable."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from paymesh.webhooks.domain import (
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    RetryPolicy,
    address_allowed,
    after_attempt,
    backoff_s,
    canonical_host,
    delivery_id,
    host_refusal,
    normalise_events,
    numeric_ipv4,
    validate_url,
    wants,
)
from paymesh.webhooks.errors import InvalidRequest

T0 = 1_767_225_600_000_000
S = 1_000_000
POLICY = RetryPolicy(base_s=60, max_delay_s=3600, window_s=3 * 24 * 3600, disable_after_s=3600)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255",
        "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1",
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001:db8::1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111",
                "::ffff:93.184.216.34", "64:ff9b::808:808"],
)  # fmt: skip
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"), ("017700000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"), ("0x7f.0x0.0.01", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
        ("10.0x10203", "10.1.2.3"), ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"), ("0xa9fea9fe", "169.254.169.254"),
    ],
)  # fmt: skip
def test_numeric_ipv4_forms_are_read_as_the_resolver_reads_them(host: str, address: str) -> None:
    assert numeric_ipv4(host) == ipaddress.IPv4Address(address)
    if not host.endswith("."):  # inet_aton takes no final dot; browsers do
        assert socket.inet_aton(host) == ipaddress.IPv4Address(address).packed


@pytest.mark.parametrize(
    "host",
    ["merchant.example", "08.1", "0x", "1.2.3.4.5", "4294967296", "1.16777216", "256.1.1.1",
     "1..1", ".1", "0xg.1", "09", "a.0x7f"],
)  # fmt: skip
def test_what_is_not_a_numeric_ipv4_address_agrees_with_inet_aton(host: str) -> None:
    if numeric_ipv4(host) is None:
        with pytest.raises(OSError, match="illegal IP address"):
            socket.inet_aton(host)
    else:  # stricter than inet_aton is safe: "0x" is 0.0.0.0 to a browser
        assert host == "0x"


def test_canonical_host_is_an_address_or_a_lower_case_name_without_its_final_dot() -> None:
    assert canonical_host("[::FFFF:127.0.0.1]") == ipaddress.IPv6Address("::ffff:7f00:1")
    assert canonical_host("0x7f.1") == ipaddress.IPv4Address("127.0.0.1")
    assert canonical_host("Hooks.Merchant.Example.") == "hooks.merchant.example"


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("2130706433", "loopback"), ("0x7f.1", "loopback"), ("127.1", "loopback"),
        ("0", "unspecified"), ("017700000001", "loopback"), ("0177.0.0.1", "loopback"),
        ("localhost", "local name"), ("localhost.", "local name"), ("LocalHost", "local name"),
        ("shop.localhost", "local name"), ("printer.local", "local name"),
        ("db.internal", "local name"), ("router.home.arpa", "local name"),
        ("metadata.google.internal", "metadata"), ("metadata.google.internal.", "metadata"),
        ("metadata", "single-label"), ("instance-data", "metadata"),
        ("::1", "loopback"), ("[::1]", "loopback"), ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"), ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:7f00:1", "loopback"), ("::", "unspecified"), ("0xa9fea9fe", "link-local"),
    ],
)  # fmt: skip
def test_hosts_refused_without_dns_say_why(host: str, why: str) -> None:
    reason = host_refusal(host)
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    "host",
    ["merchant.example", "127.0.0.1.nip.io", "93.184.216.34", "2606:4700::1111", "0x5db8d822"],
)
def test_public_addresses_and_names_to_resolve_pass_without_dns(host: str) -> None:
    assert host_refusal(host) is None


@pytest.mark.parametrize(
    "url",
    ["http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://0/", "http://017700000001/",
     "http://0177.0.0.1/", "http://localhost/", "http://localhost./", "https://metadata.google.internal/",
     "http://[::ffff:7f00:1]/", "http://[fe80::1]/"],
)  # fmt: skip
def test_disguised_loopback_and_local_urls_are_refused_unless_operators_allow_them(
    url: str,
) -> None:
    with pytest.raises(InvalidRequest, match=r"^url refused: host "):
        validate_url(url, environment="development", allow_private=False)
    validate_url(url, environment="development", allow_private=True)


def test_https_is_required_in_production_and_http_allowed_in_development() -> None:
    validate_url("https://merchant.example/h", environment="production", allow_private=False)
    with pytest.raises(InvalidRequest):
        validate_url("http://merchant.example/h", environment="production", allow_private=False)
    # Even when operators allow private addresses, production wants https.
    with pytest.raises(InvalidRequest):
        validate_url("http://merchant.example/h", environment="production", allow_private=True)
    validate_url("http://merchant.example/h", environment="development", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "", "merchant.example/h", "javascript:alert(1)", "gopher://merchant.example/",
        "https://u@merchant.example/", "https://u:p@merchant.example/", "https://:p@m.example/",
        "https://merchant.example:99999/", "https://merchant.example/\n", "https://mérchant.example/",
        "https://merchant.example/#x", "https://" + "a" * 2049,
    ],
)  # fmt: skip
def test_malformed_or_credential_carrying_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_url(url, environment="development", allow_private=False)


def test_a_url_of_2048_characters_is_the_longest_accepted() -> None:
    base = "https://merchant.example/"
    validate_url(base + "a" * (2048 - len(base)), environment="development", allow_private=False)
    with pytest.raises(InvalidRequest):
        validate_url(
            base + "a" * (2049 - len(base)), environment="development", allow_private=False
        )


def test_literal_private_addresses_are_refused_unless_allowed() -> None:
    with pytest.raises(InvalidRequest):
        validate_url("http://127.0.0.1:8080/", environment="development", allow_private=False)
    validate_url("http://127.0.0.1:8080/", environment="development", allow_private=True)


def test_events_are_known_types_or_the_wildcard() -> None:
    assert normalise_events(["refund.succeeded", "payment.succeeded", "refund.succeeded"]) == (
        "payment.succeeded",
        "refund.succeeded",
    )
    assert normalise_events(["payment.succeeded", "*"]) == ("*",)
    with pytest.raises(InvalidRequest):
        normalise_events([])
    with pytest.raises(InvalidRequest):
        normalise_events(["payment.succeeded", "risk.decision_made"])


def _endpoint(events: tuple[str, ...]) -> Endpoint:
    return Endpoint("we_1", "ten", "https://m.example/", events, "", EndpointStatus.ENABLED, T0)


def test_an_endpoint_wants_its_types_or_everything_with_the_wildcard() -> None:
    assert wants(_endpoint(("payment.succeeded",)), "payment.succeeded")
    assert not wants(_endpoint(("payment.succeeded",)), "payment.failed")
    assert wants(_endpoint(("*",)), "payment.failed")


def test_the_delivery_id_is_the_same_for_the_same_endpoint_and_event_only() -> None:
    assert delivery_id("we_1", "evt_1") == delivery_id("we_1", "evt_1")
    assert delivery_id("we_1", "evt_1") != delivery_id("we_1", "evt_2")
    assert delivery_id("we_1", "evt_1") != delivery_id("we_2", "evt_1")
    assert len(delivery_id("we_1", "evt_1")) <= 64


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    assert [backoff_s(n, POLICY, 1.0) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert backoff_s(7, POLICY, 1.0) == 3600  # 3840 capped
    assert backoff_s(500, POLICY, 1.0) == 3600
    assert backoff_s(3, POLICY, 0.5) == 120
    assert backoff_s(3, POLICY, 0.0) == 0


def _delivery(attempts: int = 0, first: int | None = None) -> Delivery:
    return Delivery(
        "dlv_1", "we_1", "evt_1", "payment.succeeded", "ten", DeliveryStatus.PENDING,
        attempts, T0, T0, first,
    )  # fmt: skip


FAIL = AttemptResult(500, "http_500", 5)
OK = AttemptResult(200, "", 5)


def _after(
    d: Delivery,
    result: AttemptResult,
    now: int,
    *,
    since: int | None = None,
    enabled: bool = True,
    policy: RetryPolicy = POLICY,
):  # type: ignore[no-untyped-def]
    return after_attempt(
        d, result, started_at_us=now, now_us=now, endpoint_enabled=enabled,
        failing_since_us=since, policy=policy, jitter=1.0,
    )  # fmt: skip


def test_a_success_delivers_and_heals_the_endpoint() -> None:
    after = _after(_delivery(), OK, T0, since=T0 - 100 * S)
    assert after.status is DeliveryStatus.SUCCEEDED
    assert after.failing_since_us is None
    assert not after.disable_endpoint


def test_a_failure_retries_after_the_backoff_and_starts_the_failing_clock() -> None:
    after = _after(_delivery(), FAIL, T0)
    assert after.status is DeliveryStatus.PENDING
    assert after.next_attempt_at_us == T0 + 60 * S
    assert after.first_attempt_at_us == T0
    assert after.failing_since_us == T0


def test_a_retry_beyond_the_window_gives_up() -> None:
    policy = RetryPolicy(base_s=60, max_delay_s=3600, window_s=600, disable_after_s=10**9)
    first = T0
    # Next attempt exactly at the window's end is still made...
    at_edge = _after(_delivery(1, first), FAIL, first + 480 * S, since=first, policy=policy)
    assert at_edge.status is DeliveryStatus.PENDING
    # ...one microsecond past it is not.
    past = _after(_delivery(1, first), FAIL, first + 480 * S + 1, since=first, policy=policy)
    assert past.status is DeliveryStatus.FAILED


def test_an_endpoint_failing_for_disable_after_s_is_disabled() -> None:
    just_before = _after(_delivery(3, T0), FAIL, T0 + 3600 * S - 1, since=T0)
    assert not just_before.disable_endpoint
    at = _after(_delivery(3, T0), FAIL, T0 + 3600 * S, since=T0)
    assert at.disable_endpoint
    assert at.status is DeliveryStatus.FAILED


def test_a_failure_on_a_no_longer_enabled_endpoint_gives_up_without_disabling_again() -> None:
    after = _after(_delivery(1, T0), FAIL, T0 + 10 * S, since=T0, enabled=False)
    assert after.status is DeliveryStatus.FAILED
    assert not after.disable_endpoint
