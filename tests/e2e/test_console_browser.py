"""The operator console in a real headless Chromium (Selenium): sign in, watch a call booked by
voice (its recording playable, its path drawn on the flow), and see a second call appear on the
open calls page without a reload.

Screenshots go to ``$SLOTLINE_TEST_ARTIFACTS`` (default: a folder under pytest's tmp_path);
their paths are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from tests.e2e.conftest import running_server
from tests.until import until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
API_TOKEN = "browser-t0ken"
WAIT_S = 20.0  # a page element or a live update; the live poll is 1 s
T = TypeVar("T")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SLOTLINE_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="slotline-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


async def _in_thread(work: Callable[[], T]) -> T:
    """Selenium blocks: it runs off the loop that serves the pages it asks for."""
    return await asyncio.to_thread(work)


def _wait_for(driver: WebDriver, css: str, text: str = "") -> str:
    def found(d: WebDriver) -> str | bool:
        elements = d.find_elements(By.CSS_SELECTOR, css)
        joined = " ".join(e.text for e in elements)
        return joined if elements and text in joined else False

    # a live update may replace a row between finding it and reading it: look again
    result: str = WebDriverWait(driver, WAIT_S, poll_frequency=0.2,
                                ignored_exceptions=(StaleElementReferenceException,)
                                ).until(found)
    return result


def _shot(driver: WebDriver, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")


async def test_console_shows_a_call_booked_by_voice_and_a_new_call_live(
    browser: WebDriver, artifacts: Path, tmp_path: Path
) -> None:
    recording = {"SLOTLINE_RECORDING__ENABLED": "true",
                 "SLOTLINE_RECORDING__FOLDER": str(tmp_path / "recordings")}
    runner, server = await running_server(recording, {"SLOTLINE_API_TOKEN": API_TOKEN})
    try:
        async with aiohttp.ClientSession() as http:
            url, params = await fetch_stream(http, server.url)
            script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
            report = await run_caller(url, script, custom_parameters=params, session=http)
        assert report.errors == ()
        sid = report.call_sid
        store = server.deps.store
        assert store is not None

        async def recorded() -> bool:  # the WAV is written in the background after the call
            return await store.recordings.get(sid) is not None

        await until(recorded)

        def sign_in() -> None:
            browser.get(server.url + "/")
            assert "/login" in browser.current_url  # the console is behind the token
            browser.find_element(By.NAME, "token").send_keys(API_TOKEN)
            browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            _wait_for(browser, "#calls tr[data-sid]")

        await _in_thread(sign_in)

        def calls_page() -> str:
            row = _wait_for(browser, f'#calls tr[data-sid="{sid}"]', "completed")
            _shot(browser, artifacts, "calls")
            return row

        row = await _in_thread(calls_page)
        assert "inbound" in row and "demo_booking" in row and "John Smith" in row

        def call_page() -> tuple[str, int]:
            browser.get(f"{server.url}/calls/{sid}")
            transcript = _wait_for(browser, "#transcript", "next tuesday")
            bars = [t for t in browser.find_elements(By.CSS_SELECTOR, "#waterfall svg text")
                    if t.text.startswith("turn ") and t.text.endswith(" ms)")]
            _shot(browser, artifacts, "call")
            latency_png = artifacts / "call-latency.png"
            browser.find_element(By.ID, "waterfall").screenshot(str(latency_png))
            print(f"screenshot: {latency_png}")
            return transcript, len(bars)

        transcript, latency_bars = await _in_thread(call_page)
        assert "my name is john smith" in transcript and "three p m" in transcript
        assert "May I have your name?" in transcript
        assert latency_bars >= len(DEMO_SCRIPT) - 1  # a waterfall bar per answered caller turn

        def recording_and_path() -> tuple[str, dict[str, object], list[str], set[str], list[str]]:
            source = browser.find_element(By.CSS_SELECTOR, "audio[controls]").get_attribute("src")
            # the page's own fetch: the browser sends the session cookie, the console adds the
            # bearer token for /api
            fetched: dict[str, object] = browser.execute_async_script(
                "var done = arguments[arguments.length - 1];"
                "fetch(arguments[0], {credentials: 'same-origin'}).then(function (r) {"
                "  return r.arrayBuffer().then(function (b) {"
                "    done({status: r.status, type: r.headers.get('Content-Type'),"
                "          bytes: b.byteLength}); }); })"
                ".catch(function (e) { done({status: 0, type: String(e), bytes: 0}); });",
                source)
            listed = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#path li")]
            visited = {e.get_attribute("data-node") or "" for e in browser.find_elements(
                By.CSS_SELECTOR, "#flow-path g.node.visited")}
            numbers = [e.text for e in browser.find_elements(
                By.CSS_SELECTOR, "#flow-path g.step-number text")]
            graph_png = artifacts / "call-path.png"
            browser.find_element(By.ID, "flow-path").screenshot(str(graph_png))
            print(f"screenshot: {graph_png}")
            return source or "", fetched, listed, visited, numbers

        source, fetched, listed, visited, numbers = await _in_thread(recording_and_path)
        assert source == f"{server.url}/api/calls/{sid}/recording"
        assert fetched["status"] == 200 and fetched["type"] == "audio/wav", fetched
        assert isinstance(fetched["bytes"], int) and fetched["bytes"] > 44  # more than a header
        assert listed[0] == "greet" and listed[-1] == "goodbye", listed
        assert {"ask_name", "ask_date", "ask_time"} <= set(listed)
        assert visited == set(listed)  # every node entered is marked on the graph, no other
        steps = sorted(int(n) for label in numbers for n in label.split(","))
        assert steps == list(range(1, len(listed)))  # each move drawn once, numbered in order

        def bookings_page() -> str:
            browser.get(server.url + "/bookings")
            found = _wait_for(browser, "#bookings", "confirmed")
            _shot(browser, artifacts, "bookings")
            return found

        assert "John Smith" in await _in_thread(bookings_page)

        def open_calls() -> None:
            browser.get(server.url + "/")
            _wait_for(browser, "#live", "live")  # the event stream is connected
            browser.execute_script("window.__sameDocument = true;")

        await _in_thread(open_calls)
        second = "CA" + secrets.token_hex(16)
        hangup = asyncio.Event()
        async with aiohttp.ClientSession() as http:
            url, params = await fetch_stream(http, server.url, call_sid=second)
            call = asyncio.create_task(run_caller(
                url, [caller_wav("name_john")], custom_parameters=params, session=http,
                hangup=hangup, call_sid=second), name="second-caller")

            def live_row() -> tuple[str, bool]:
                row = _wait_for(browser, f'#calls tr[data-sid="{second}"]', "in-progress")
                _shot(browser, artifacts, "calls-live")
                return row, bool(browser.execute_script("return window.__sameDocument === true;"))

            try:
                live, same_document = await _in_thread(live_row)
            finally:
                hangup.set()
                await call
        assert same_document  # the row arrived without a reload
        assert "inbound" in live
    finally:
        await runner.cleanup()
