"""The Swagger UI page in a real browser, with no network beyond this machine.

Debian's Chromium, driven by Playwright, opens `/docs` of the API running as its own
process on the real stack (with a worker, so that a posted reading is stored). Every
request to another host is aborted and recorded: the page must need none of them. With
API keys configured, the page's "Authorize" button is how a person sends one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from devstack import services
from devstack.ports import free_port
from devstack.stack import LocalStack
from tests.helpers import READING, unique, wait_until

# Debian's package, never a browser Playwright downloads: CI machines reach package
# registries only, and the browser is then one the distribution keeps patched.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    # No traffic of the browser's own (updates, sync, field trials): only the page's
    # requests leave it, and those are all checked below.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "browser" / "swagger-ui.png"
# Generous: the API, a worker, Kafka and Chromium share two cores in CI.
UI_TIMEOUT_MS = 30_000

READINGS_PATH = "/cpu-info/{machine_id}"
API_KEY = "a-key-typed-into-swagger-ui-0001"


@pytest.fixture
def keyed_api_url(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    """The API as a process of its own, requiring API_KEY for writes."""
    port = free_port()
    env = {**stack.api_env(), "KAFKA_TOPIC": topic, "API_PORT": str(port), "API_KEYS": API_KEY}
    api = services.producer_api(tmp_path, env)
    api.start()
    try:
        yield f"http://{services.HOST}:{port}"
    finally:
        api.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        # Failing, not skipping: a CI machine without the browser would otherwise pass
        # without ever looking at the page.
        pytest.fail(
            f"Debian's Chromium is not installed ({CHROMIUM} is missing): "
            "run `bash scripts/bootstrap.sh all` or `apt-get install chromium`"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class OfflinePage:
    """A page that reaches only this machine, and what it tried beyond that."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def keep_local(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        # data: and blob: URLs (Swagger UI's icons) are not requests to anywhere.
        if url.scheme in {"data", "blob"} or url.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location})")

    def record_page_error(self, error: PlaywrightError) -> None:
        self.console_errors.append(f"uncaught: {error}")


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    offline = OfflinePage(page)
    page.route("**/*", offline.keep_local)
    page.on("console", offline.record_console)
    page.on("pageerror", offline.record_page_error)
    try:
        yield offline
    finally:
        # Kept whether the test passed or not: on failure it shows where the page stood.
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
        context.close()


def operation(page: Page, method: str, path: str) -> Locator:
    """One operation's block in Swagger UI, found by its method and path."""
    return page.locator(f".opblock.opblock-{method.lower()}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def try_it_out(block: Locator, machine_id: str) -> Locator:
    """Open an operation, fill the machine id, execute; the live response's status cell."""
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.locator('tr[data-param-name="machine_id"] input').fill(machine_id)
    block.get_by_role("button", name="Execute").click()
    return block.locator(".live-responses-table .response .response-col_status")


def response_body(block: Locator) -> object:
    return json.loads(
        block.locator(".live-responses-table .response .highlight-code pre").first.inner_text()
    )


def stored(api_url: str, machine_id: str) -> bool:
    return httpx.get(f"{api_url}/cpu-info/{machine_id}", timeout=5).status_code == 200


def test_swagger_ui_posts_and_reads_a_reading_offline(
    api_url: str, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    page.goto(f"{api_url}/docs")
    expect(page).to_have_title("Memory telemetry API - Swagger UI", timeout=UI_TIMEOUT_MS)
    post = operation(page, "POST", READINGS_PATH)
    get = operation(page, "GET", READINGS_PATH)
    for block in (post, get, operation(page, "GET", "/healthz"), operation(page, "GET", "/readyz")):
        expect(block).to_be_visible(timeout=UI_TIMEOUT_MS)

    machine_id = unique("browser")
    # The body is left as Swagger UI fills it: the example of the OpenAPI document.
    expect(try_it_out(post, machine_id)).to_have_text("200", timeout=UI_TIMEOUT_MS)
    assert response_body(post) == {machine_id: READING}

    # The worker stores the reading asynchronously: ask for it once it is there.
    wait_until(lambda: stored(api_url, machine_id), 30, "the reading stored by the worker")
    expect(try_it_out(get, machine_id)).to_have_text("200", timeout=UI_TIMEOUT_MS)
    assert response_body(get) == {machine_id: READING}

    assert offline_page.blocked == [], "the page asked for something beyond this machine"
    assert offline_page.console_errors == []


def test_swagger_ui_sends_the_key_given_to_authorize(
    keyed_api_url: str, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    page.goto(f"{keyed_api_url}/docs")
    post = operation(page, "POST", READINGS_PATH)
    expect(post).to_be_visible(timeout=UI_TIMEOUT_MS)

    # Without a key the API refuses the reading.
    expect(try_it_out(post, unique("browser"))).to_have_text("401", timeout=UI_TIMEOUT_MS)

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("input").fill(API_KEY)
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()

    machine_id = unique("browser")
    post.locator('tr[data-param-name="machine_id"] input').fill(machine_id)
    post.get_by_role("button", name="Execute").click()
    status = post.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text("200", timeout=UI_TIMEOUT_MS)
    assert response_body(post) == {machine_id: READING}

    assert offline_page.blocked == [], "the page asked for something beyond this machine"
    # The browser reports the refused first try itself; nothing else went wrong.
    unexpected = [e for e in offline_page.console_errors if "status of 401" not in e]
    assert unexpected == []
