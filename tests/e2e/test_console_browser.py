"""The console in a real browser: Debian's chromium, headless, driven through its
chromedriver (installed with apt when missing, as the image tests install podman).

The platform runs on this test's event loop, so every browser step runs on a thread
(asyncio.to_thread) while the loop serves it. Screenshots of the pages go to the test's
folder, and to $PAYMESH_CONSOLE_SCREENSHOTS when set (docs/console/ holds the ones
docs/console.md shows: `PAYMESH_CONSOLE_SCREENSHOTS=docs/console make test`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from paymesh.gateway.operator import recent_audit
from tests.apt import ensure_packages

from .conftest import Running
from .console_helpers import demo_api, new_user, paid, tenant_of
from .receiver import Receiver
from .test_risk_e2e import REVIEW_RULES, risky_platform, until

NEW_PASSWORD = "a long and new password"


def _chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed when missing (CI runs as root)."""
    ensure_packages({"chromium": "chromium", "chromedriver": "chromium-driver"})
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser, "apt-get install chromium left no chromium on PATH"
    assert driver, "apt-get install chromium-driver left no chromedriver on PATH"
    return browser, driver


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    """A headless chromium (one per module: starting one costs seconds)."""
    browser, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()


class Pages:
    """The console as a person uses it: typing, clicking, reading (blocking calls)."""

    def __init__(self, driver: WebDriver, url: str, shots: list[Path]) -> None:
        self.d = driver
        self.url = url
        self.shots = shots

    def open(self, path: str) -> None:
        self.d.get(f"{self.url}/console{path}")

    def field(self, name: str, text: str) -> None:
        box = self.d.find_element(By.NAME, name)
        box.clear()
        box.send_keys(text)

    def submit(self, label: str) -> None:
        self.d.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()

    def wait_for(self, path: str) -> None:
        WebDriverWait(self.d, 15).until(ec.url_to_be(f"{self.url}/console{path}"))

    def wait_path(self, prefix: str) -> None:
        WebDriverWait(self.d, 15).until(ec.url_contains(f"/console{prefix}"))

    def text(self) -> str:
        return str(self.d.find_element(By.TAG_NAME, "body").text)

    def shot(self, name: str) -> None:
        for folder in self.shots:
            folder.mkdir(parents=True, exist_ok=True)
            self.d.save_screenshot(str(folder / f"{name}.png"))

    def sign_out(self) -> None:
        self.submit("Sign out")
        self.wait_for("/login")


def _shots(tmp_path: Path) -> list[Path]:
    folders = [tmp_path / "screenshots"]
    if os.environ.get("PAYMESH_CONSOLE_SCREENSHOTS"):
        folders.append(Path(os.environ["PAYMESH_CONSOLE_SCREENSHOTS"]))
    return folders


def _support_agent(pages: Pages, email: str, one_time: str, payment_id: str, payer: str) -> None:
    """Sign in, change the one-time password, find the payment, refund part of it."""
    p = pages
    p.open("/login")
    p.shot("sign-in")
    p.field("email", email)
    p.field("password", one_time)
    p.submit("Sign in")
    p.wait_for("/password")
    assert "one-time password" in p.text()
    p.field("current", one_time)
    p.field("new", NEW_PASSWORD)
    p.field("again", NEW_PASSWORD)
    p.submit("Change password")
    p.wait_for("/?done=password")
    assert "Password changed." in p.text()
    p.shot("home")

    p.d.find_element(By.LINK_TEXT, "Payments").click()
    p.wait_for("/payments")
    assert payment_id in p.text()
    p.shot("payments")
    p.field("id", payment_id)
    p.submit("Search")
    p.wait_for(f"/payments/{payment_id}")
    body = p.text()
    assert "succeeded" in body
    assert "Refunded\n0.00 USD" in body
    assert "refund.succeeded" not in body
    p.shot("payment")
    p.d.find_element(By.LINK_TEXT, payer).click()
    p.wait_for(f"/accounts/{payer}")
    assert "Available\n75.00 USD" in p.text()
    p.d.back()
    p.wait_for(f"/payments/{payment_id}")

    p.d.find_element(By.LINK_TEXT, "Refund").click()
    p.wait_for(f"/payments/{payment_id}/refund")
    p.field("amount", "700")
    p.field("reason", "customer asked")
    p.shot("refund-confirm")
    p.submit("Confirm refund")
    p.wait_path(f"/payments/{payment_id}?done=")
    body = p.text()
    assert "Refund made." in body
    assert "Refunded\n7.00 USD" in body
    # The timeline shows the refund once its event is out (the outbox relays it).
    for _ in range(50):
        if "refund.succeeded" in p.text():
            break
        time.sleep(0.1)
        p.d.refresh()
    assert "refund.succeeded" in p.text()
    p.d.find_element(By.LINK_TEXT, payer).click()
    p.wait_for(f"/accounts/{payer}")
    assert "Available\n82.00 USD" in p.text()  # 100.00 - 25.00 + 7.00
    p.sign_out()


def _admin_audit(pages: Pages, email: str, password: str, agent: str) -> None:
    """The demo admin reads the agent's actions in the audit log."""
    p = pages
    p.open("/login")
    p.field("email", email)
    p.field("password", password)
    p.submit("Sign in")
    p.wait_for("/tenant")
    p.submit("Work on this tenant")
    p.wait_for("/")
    p.d.find_element(By.LINK_TEXT, "Audit log").click()
    p.wait_for("/audit")
    p.field("actor", f"console:{agent}")
    p.submit("Filter")
    p.wait_path("/audit?")
    body = p.text()
    for action in ("console.sign_in", "console.password_changed", "console.payment_refund"):
        assert action in body, action
    p.shot("audit")
    p.sign_out()


async def test_a_support_agent_refunds_part_of_a_payment_in_the_browser(
    embedded: Running, chrome: WebDriver, tmp_path: Path
) -> None:
    api = await demo_api(embedded)
    try:
        tenant = await tenant_of(api)
        payment = await paid(api, amount=2_500)
        email, one_time = await new_user(embedded, "support", tenant)
        pages = Pages(chrome, embedded.url, _shots(tmp_path))
        await asyncio.to_thread(
            _support_agent, pages, email, one_time, payment["id"], payment["payer_account_id"]
        )
        after = await api.get(f"/v1/payments/{payment['id']}")
        assert after["amount_refunded"] == 700
        payer = await api.get(f"/v1/accounts/{payment['payer_account_id']}")
        assert payer["balance"]["available"] == 10_000 - 2_500 + 700
        creds = embedded.creds
        await asyncio.to_thread(
            _admin_audit, pages, creds["console_email"], creds["console_password"], email
        )
        audit = await recent_audit(embedded.platform.settings, limit=100)
        assert [e.details for e in audit if e.action == "console.payment_refund"] == [
            {"amount": 700}
        ]
    finally:
        await api.close()


def _phone_and_keyboard(pages: Pages, email: str, password: str) -> list[str]:
    """At phone width, sign in with the keyboard alone; every page fits the screen and
    loads nothing from another origin. The browser's console messages."""
    p, d = pages, pages.d
    d.set_window_size(390, 844)
    try:
        p.open("/login")
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert d.switch_to.active_element.text == "Skip to content"
        d.switch_to.active_element.send_keys(Keys.TAB)  # the brand link
        d.switch_to.active_element.send_keys(Keys.TAB)
        assert d.switch_to.active_element.get_attribute("name") == "email"
        d.switch_to.active_element.send_keys(email, Keys.TAB)
        d.switch_to.active_element.send_keys(password, Keys.ENTER)
        p.wait_for("/tenant")
        d.find_element(By.NAME, "tenant_id").send_keys(Keys.TAB)
        assert d.switch_to.active_element.text == "Work on this tenant"
        d.switch_to.active_element.send_keys(Keys.ENTER)
        p.wait_for("/")
        for path in ("/", "/payments", "/audit"):
            p.open(path)
            width = d.execute_script("return document.documentElement.scrollWidth")
            inner = d.execute_script("return window.innerWidth")
            assert width <= inner, (path, width, inner)
            resources = d.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
            )
            assert all(r.startswith(f"{p.url}/console/") for r in resources), resources
            if path == "/":
                p.shot("home-phone")
        p.sign_out()
        return [str(entry["message"]) for entry in d.get_log("browser")]
    finally:
        d.set_window_size(1280, 900)


async def test_the_console_works_at_phone_width_with_the_keyboard_and_breaks_no_policy(
    embedded: Running, chrome: WebDriver, tmp_path: Path
) -> None:
    api = await demo_api(embedded)
    try:
        await paid(api)
    finally:
        await api.close()
    pages = Pages(chrome, embedded.url, _shots(tmp_path))
    creds = embedded.creds
    messages = await asyncio.to_thread(
        _phone_and_keyboard, pages, creds["console_email"], creds["console_password"]
    )
    # No page broke its Content-Security-Policy or failed to load a resource.
    assert [m for m in messages if "Content Security Policy" in m or "Failed to load" in m] == []


def _sign_in_first_time(p: Pages, email: str, one_time: str) -> None:
    """Sign in with a one-time password and choose a new one."""
    p.open("/login")
    p.field("email", email)
    p.field("password", one_time)
    p.submit("Sign in")
    p.wait_for("/password")
    p.field("current", one_time)
    p.field("new", NEW_PASSWORD)
    p.field("again", NEW_PASSWORD)
    p.submit("Change password")
    p.wait_path("/?done=")


def _approve_review(p: Pages, payment_id: str) -> None:
    """The review queue, the payment's review, approved with a note."""
    p.d.find_element(By.LINK_TEXT, "Reviews").click()
    p.wait_for("/risk/reviews")
    assert payment_id in p.text()
    p.shot("reviews")
    p.d.find_element(By.LINK_TEXT, payment_id).click()
    p.wait_for(f"/risk/reviews/{payment_id}")
    assert "amount_needs_review" in p.text()
    p.shot("review")
    p.field("note", "known customer")
    p.submit("Approve")
    p.wait_path(f"/risk/reviews/{payment_id}?done=")
    assert "Review approved" in p.text()


def _payment_status(p: Pages, payment_id: str) -> str:
    p.open(f"/payments/{payment_id}")
    return str(p.d.find_element(By.CSS_SELECTOR, "span.status").text)


def _block(p: Pages, account_id: str) -> None:
    """Open the list blocked_accounts from the rules page and add `account_id` to it."""
    p.d.find_element(By.LINK_TEXT, "Risk rules").click()
    p.wait_for("/risk/rules")
    assert "review-1" in p.text()
    p.field("name", "blocked_accounts")
    p.submit("Open the list")
    p.wait_for("/risk/lists/blocked_accounts")
    p.field("value", account_id)
    p.field("note", "chargebacks")
    p.submit("Add")
    p.wait_path("/risk/lists/blocked_accounts?done=")
    assert account_id in p.text()
    p.shot("block-list")


async def test_a_risk_analyst_approves_a_review_and_blocks_a_payer_in_the_browser(
    tmp_path: Path, ports: dict[str, int], chrome: WebDriver
) -> None:
    async with risky_platform(tmp_path, ports, REVIEW_RULES, review_timeout_s=3600) as (
        running,
        _,
    ):
        api = await demo_api(running)
        try:
            held = await paid(api, amount=6_000)
            assert held["status"] == "in_review"
            email, one_time = await new_user(running, "risk", await tenant_of(api))
            pages = Pages(chrome, running.url, _shots(tmp_path))
            await asyncio.to_thread(_sign_in_first_time, pages, email, one_time)
            await asyncio.to_thread(_approve_review, pages, held["id"])
            done = await until(
                lambda: api.get(f"/v1/payments/{held['id']}"),
                lambda p: p["status"] not in ("in_review", "processing"),
            )
            assert done["status"] == "succeeded"
            # ... and the analyst sees it captured.
            shown = await asyncio.to_thread(_payment_status, pages, held["id"])
            assert shown == "succeeded"

            payer = held["payer_account_id"]
            await asyncio.to_thread(_block, pages, payer)
            body = {
                "payer_account_id": payer,
                "payee_account_id": held["payee_account_id"],
                "amount": 100,
                "currency": "USD",
                "capture_method": "automatic",
            }
            nxt = await api.post("/v1/payments", body, key=str(uuid.uuid4()))
            assert (nxt["status"], nxt["risk"]["reasons"]) == ("failed", ["blocked_payer"])
            # ... which the analyst sees declined.
            shown = await asyncio.to_thread(_payment_status, pages, nxt["id"])
            assert shown == "failed"
            await asyncio.to_thread(pages.sign_out)
            creds = running.creds
            await asyncio.to_thread(
                _admin_audit_actions, pages, creds["console_email"], creds["console_password"],
                email, ("console.review_approved", "console.list_entry_added"),
            )  # fmt: skip
        finally:
            await api.close()


def _create_endpoint(p: Pages, url: str) -> str:
    """The admin creates an endpoint for payment.succeeded; the secret shown once."""
    p.d.find_element(By.LINK_TEXT, "Webhooks").click()
    p.wait_for("/webhooks")
    p.field("url", url)
    Select(p.d.find_element(By.NAME, "events")).select_by_value("payment.succeeded")
    p.field("description", "browser test")
    p.submit("Create endpoint")
    shown = WebDriverWait(p.d, 15).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".secret code"))
    )
    secret = str(shown.text)
    assert secret.startswith("whsec_")
    assert "shown only this once" in p.text()
    p.d.find_element(By.LINK_TEXT, "To the endpoint").click()
    p.wait_path("/webhooks/we_")
    return str(p.d.current_url.rsplit("/", 1)[1])


def _resend(p: Pages, endpoint_id: str, event_id: str) -> None:
    """The agent opens the endpoint's delivery log and resends the event."""
    p.open(f"/webhooks/{endpoint_id}")
    assert event_id in p.text()
    assert "200" in p.text()  # the first attempt's answer
    p.d.find_element(By.CSS_SELECTOR, f"button[aria-label='Resend {event_id}']").click()
    p.wait_path(f"/webhooks/{endpoint_id}?done=resent")
    p.shot("webhook")


async def test_an_admin_adds_an_endpoint_and_an_agent_resends_a_delivery_in_the_browser(
    embedded: Running, chrome: WebDriver, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.start()
    api = await demo_api(embedded)
    try:
        pages = Pages(chrome, embedded.url, _shots(tmp_path))
        creds = embedded.creds
        await asyncio.to_thread(
            _admin_signs_in, pages, creds["console_email"], creds["console_password"]
        )
        endpoint_id = await asyncio.to_thread(_create_endpoint, pages, receiver.url)
        await asyncio.to_thread(pages.sign_out)
        payment = await paid(api)
        (first,) = await receiver.wait_for(1)
        assert first.event["data"]["id"] == payment["id"]
        email, one_time = await new_user(embedded, "support", await tenant_of(api))
        await asyncio.to_thread(_sign_in_first_time, pages, email, one_time)
        await asyncio.to_thread(_resend, pages, endpoint_id, first.event["id"])
        again = await receiver.wait_for(2)
        assert again[1].event["id"] == first.event["id"]
        log = await api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries")
        assert len(log["data"]) == 2
        # The agent sees the new delivery's attempt in the log.
        await asyncio.to_thread(_see_two_attempts, pages, endpoint_id, first.event["id"])
        await asyncio.to_thread(pages.sign_out)
        await asyncio.to_thread(
            _admin_audit_actions, pages, creds["console_email"], creds["console_password"],
            email, ("console.webhook_resent",),
        )  # fmt: skip
    finally:
        await api.close()
        await receiver.stop()


def _see_two_attempts(p: Pages, endpoint_id: str, event_id: str) -> None:
    """The endpoint's log shows the event delivered twice, each with a 200 attempt."""
    for _ in range(50):
        p.open(f"/webhooks/{endpoint_id}")
        rows = p.d.find_elements(By.XPATH, f"//tr[td/code[text()='{event_id}']]")
        if len(rows) == 2 and all(": 200," in r.text for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"not two delivered attempts of {event_id}: {p.text()}")


def _admin_audit_actions(
    p: Pages, email: str, password: str, actor: str, actions: tuple[str, ...]
) -> None:
    """The admin finds `actor`'s `actions` in the audit log."""
    _admin_signs_in(p, email, password)
    p.open("/audit")
    p.field("actor", f"console:{actor}")
    p.submit("Filter")
    p.wait_path("/audit?")
    body = p.text()
    for action in actions:
        assert action in body, action
    p.sign_out()


def _admin_signs_in(p: Pages, email: str, password: str) -> None:
    p.open("/login")
    p.field("email", email)
    p.field("password", password)
    p.submit("Sign in")
    p.wait_for("/tenant")
    p.submit("Work on this tenant")
    p.wait_for("/")


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_console_browser")
