"""The dashboard in a real browser, offline, on the real stack.

Readings are posted through the API (Kafka, then the worker into Redis); Debian's
Chromium, driven by Playwright, opens `/dashboard/`: the machines are listed with their
shares, sorting by pressure or by id reorders them, a machine's page draws its history
with uPlot and asks the history API for the range chosen. With reads behind API keys,
the page asks for a key and sends it. Screenshots of both pages are kept in the test's
directory (the path is printed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.stack import LocalStack
from telemetry_common.contract import MemoryReading, encode_record, utc_now
from tests.browser.test_swagger_ui import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, OfflinePage
from tests.helpers import api_and_worker, produce, unique, wait_until

TOTAL = 8 * 1_048_576  # 8 GiB in KiB
API_KEY = "a-key-typed-into-the-dashboard-01"
# The colour uPlot strokes the "Used" series with (assets/machine.js).
USED_STROKE = (0xD9, 0x48, 0x0F)


def with_available(available: int) -> dict[str, int]:
    used = TOTAL - available - TOTAL // 16
    return {
        "total": TOTAL,
        "used": used,
        "free": available // 2,
        "shared": 0,
        "buff_cache": TOTAL - used - available // 2,
        "available": available,
    }


@pytest.fixture
def keyed_api_url(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    env = {
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": unique("writers"),
        "API_KEYS": API_KEY,
        "API_KEYS_PROTECT_READS": "true",
    }
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, as the Swagger UI test drives it (failing if it is missing)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is not installed ({CHROMIUM} is missing)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def offline_page(chromium: Browser) -> Iterator[OfflinePage]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    offline = OfflinePage(page)
    page.route("**/*", offline.keep_local)
    page.on("console", offline.record_console)
    page.on("pageerror", offline.record_page_error)
    try:
        yield offline
    finally:
        context.close()


def post(api_url: str, machine_id: str, available: int, headers: dict[str, str]) -> None:
    answer = httpx.post(
        f"{api_url}/cpu-info/{machine_id}", json=with_available(available), headers=headers
    )
    assert answer.status_code == 200, answer.text


def fleet() -> dict[str, int]:
    """Machines whose pressure order is not their id order, and their availables."""
    prefix = unique("dash")
    # Ids a..e, pressures 0.3, 0.95, 0.6, 0.85, 0.1.
    return {
        f"{prefix}-{letter}": int(TOTAL * share)
        for letter, share in zip("abcde", (0.7, 0.05, 0.4, 0.15, 0.9), strict=True)
    }


def produce_history(bootstrap: str, topic: str, machine_id: str, spread_ms: int) -> int:
    """Older readings of the machine, sent to Kafka as the API would but with Kafka
    timestamps spread over the last `spread_ms`, so that its chart spans the hour;
    how many."""
    now_ms = int(time.time() * 1000)
    shares = (0.5, 0.35, 0.4, 0.2, 0.25, 0.1, 0.15, 0.08)
    records = [
        encode_record(
            machine_id, MemoryReading.model_validate(with_available(int(TOTAL * share))), utc_now()
        )
        for share in shares
    ]
    produce(
        bootstrap,
        topic,
        records,
        [now_ms - spread_ms + n * spread_ms // len(shares) for n in range(len(shares))],
    )
    return len(shares)


def post_fleet(
    api_url: str, availables: dict[str, int], headers: dict[str, str] | None = None
) -> None:
    """Post each machine's reading through the API; wait until all are stored."""
    headers = headers or {}
    for machine_id, available in availables.items():
        post(api_url, machine_id, available, headers)

    def stored() -> bool:
        return all(
            httpx.get(f"{api_url}/cpu-info/{m}", headers=headers).status_code == 200
            for m in availables
        )

    wait_until(stored, 30, "the readings stored by the worker")


def listed(page: Page, prefix: str) -> list[str]:
    """The machine ids of the fleet table's rows that start with `prefix`, in order."""
    ids: list[str] = page.locator("#fleet tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.machineId)"
    )
    return [m for m in ids if m.startswith(prefix)]


def used_stroke_pixels(page: Page) -> int:
    """How many pixels of the chart's canvas have the "Used" series' colour."""
    count: int = page.locator("#chart canvas").evaluate(
        """(canvas, rgb) => {
            const data = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - rgb[0]) < 8 && Math.abs(data[i + 1] - rgb[1]) < 8
                    && Math.abs(data[i + 2] - rgb[2]) < 8 && data[i + 3] > 200) n++;
            }
            return n;
        }""",
        list(USED_STROKE),
    )
    return count


def history_span(page: Page, action: Callable[[], object]) -> tuple[int, int]:
    """The `since` and `until` of the history request `action` makes the page send."""
    with page.expect_request(lambda r: urlsplit(r.url).path.endswith("/history")) as sent:
        action()
    query = parse_qs(urlsplit(sent.value.url).query)
    return int(query["since"][0]), int(query["until"][0])


def test_the_dashboard_lists_sorts_and_charts_the_fleet_offline(
    stack: LocalStack, topic: str, api_url: str, offline_page: OfflinePage, tmp_path: Path
) -> None:
    availables = fleet()
    prefix = next(iter(availables)).rsplit("-", 1)[0]
    by_pressure = sorted(availables, key=lambda m: availables[m])
    # The most pressed machine's last 50 minutes, for its chart; then every machine's
    # latest reading through the API.
    pressed = by_pressure[0]
    points = 1 + produce_history(stack.bootstrap_servers, topic, pressed, 50 * 60_000)
    post_fleet(api_url, availables)
    page = offline_page.page

    page.goto(f"{api_url}/dashboard?limit=500")
    expect(page).to_have_title("Fleet - Memory telemetry")
    row = page.locator(f'#fleet tbody tr[data-machine-id="{by_pressure[1]}"]')
    expect(row).to_be_visible()
    # Sorted by pressure, highest first, by default; each row with its shares.
    assert listed(page, prefix) == by_pressure
    share = 1 - availables[by_pressure[1]] / TOTAL
    expect(row.locator("td").nth(1)).to_have_text(f"{share * 100:.1f} %")
    expect(row.locator("td").nth(3)).to_have_text(f"{(1 - share) * 100:.1f} %")
    in_use = with_available(availables[by_pressure[1]])["used"] / TOTAL
    expect(row.locator("td").nth(2)).to_have_text(f"{in_use * 100:.1f} %")
    expect(row.locator("td").nth(4)).to_have_text("8.00 GiB")
    expect(row.locator("td").nth(5)).to_contain_text("ago")
    fleet_shot = tmp_path / "dashboard-fleet.png"
    page.screenshot(path=fleet_shot, full_page=True)

    page.select_option("#sort", "id")
    expect(page.locator("#fleet tbody tr").first).to_be_visible()
    wait_until(lambda: listed(page, prefix) == sorted(availables), 10, "the id order")
    page.select_option("#sort", "pressure")
    page.fill("#min-pressure", "80")
    page.click("#controls button[type=submit]")
    wait_until(lambda: listed(page, prefix) == by_pressure[:2], 10, "pressures of 80 % and more")
    assert "min_pressure=80" in page.url

    # The machine's page: latest reading, and its history drawn for the range chosen.
    since, until = history_span(page, page.locator(f'#fleet a:text-is("{pressed}")').click)
    assert until - since == 3_600_000  # the last hour, by default
    expect(page.locator("#machine-id")).to_have_text(pressed)
    expect(page.locator("#chart")).to_have_attribute("data-points", str(points))
    expect(page.locator("#chart canvas")).to_be_visible()
    drawn = used_stroke_pixels(page)
    assert drawn > 500, drawn

    since, until = history_span(page, lambda: page.select_option("#preset", "86400"))
    assert until - since == 86_400_000
    expect(page.locator("#chart")).to_have_attribute("data-points", str(points))

    # A range before the readings: the page asks for it and draws none.
    page.select_option("#preset", "custom")
    page.fill("#since", "2020-01-01T00:00:00")
    page.fill("#until", "2020-01-02T00:00:00")
    since, until = history_span(page, lambda: page.click("#range button[type=submit]"))
    assert until - since == 86_400_000
    assert until < time.time() * 1000 - 86_400_000
    expect(page.locator("#chart")).to_have_attribute("data-points", "0")

    page.select_option("#preset", "3600")
    expect(page.locator("#chart")).to_have_attribute("data-points", str(points))
    machine_shot = tmp_path / "dashboard-machine.png"
    page.screenshot(path=machine_shot, full_page=True)
    print(f"dashboard screenshots: {fleet_shot} {machine_shot}")

    assert offline_page.blocked == [], "the page asked for something beyond this machine"
    assert offline_page.console_errors == []


def test_with_reads_behind_keys_the_dashboard_asks_for_one_and_sends_it(
    keyed_api_url: str, offline_page: OfflinePage, tmp_path: Path
) -> None:
    availables = fleet()
    post_fleet(keyed_api_url, availables, {"X-API-Key": API_KEY})
    prefix = next(iter(availables)).rsplit("-", 1)[0]
    page = offline_page.page

    page.goto(f"{keyed_api_url}/dashboard/?limit=500")
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key", "not-the-key-0123456789")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-reason")).to_contain_text("refused")
    page.fill("#key", API_KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-form")).to_be_hidden()
    wait_until(
        lambda: listed(page, prefix) == sorted(availables, key=lambda m: availables[m]),
        10,
        "the fleet read with the key",
    )

    # The key is kept for the tab: the machine's page reads with it too.
    machine_id = sorted(availables)[0]
    page.locator(f'#fleet a:text-is("{machine_id}")').click()
    expect(page.locator("#chart")).to_have_attribute("data-points", "1")
    expect(page.locator("#key-form")).to_be_hidden()
    page.screenshot(path=tmp_path / "dashboard-keyed.png", full_page=True)
    print(f"dashboard screenshot: {tmp_path / 'dashboard-keyed.png'}")

    assert offline_page.blocked == []
    # The browser reports the refused first tries itself; nothing else went wrong.
    unexpected = [e for e in offline_page.console_errors if "status of 40" not in e]
    assert unexpected == []
