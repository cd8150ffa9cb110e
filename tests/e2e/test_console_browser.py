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
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from paymesh.gateway.operator import recent_audit

from .conftest import Running
from .console_helpers import demo_api, new_user, paid, tenant_of

NEW_PASSWORD = "a long and new password"


def _chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed when missing (CI runs as root)."""
    wanted = {"chromium": "chromium", "chromedriver": "chromium-driver"}
    missing = [pkg for tool, pkg in wanted.items() if not shutil.which(tool)]
    if missing:
        assert os.geteuid() == 0, f"{missing} missing and not root: apt-get install -y {missing}"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *missing]):
            subprocess.run(cmd, check=True, env=env, timeout=900, capture_output=True)
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


def _support_agent(pages: Pages, email: str, one_time: str, payment_id: str) -> None:
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
    p.wait_for("/?done=password+changed")
    assert "password changed" in p.text()
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
    p.shot("payment")

    p.d.find_element(By.LINK_TEXT, "Refund").click()
    p.wait_for(f"/payments/{payment_id}/refund")
    p.field("amount", "700")
    p.field("reason", "customer asked")
    p.shot("refund-confirm")
    p.submit("Confirm refund")
    p.wait_path(f"/payments/{payment_id}?done=")
    body = p.text()
    assert "refund done" in body
    assert "Refunded\n7.00 USD" in body
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
        await asyncio.to_thread(_support_agent, pages, email, one_time, payment["id"])
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
