"""The dashboard in a real browser (headless Chromium under Selenium): sign in, live updates, Replay, escaping.

Set DASHBOARD_SCREENSHOTS=DIR to save a screenshot of each page visited into DIR (docs/ holds the README's).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dashboard_support import HOOK_PATH, XSS, Browser
from running_bridge import API_KEY, RunningBridge
from simulator_control import SimulatorControl
from waiting import eventually
from webhook_sink import Reply, Sink

from bridge.appkeys import STORE

SHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


async def _in_thread(function, *args):
    """Run a blocking Selenium call without stopping the bridge's event loop."""
    return await asyncio.to_thread(function, *args)


async def _sign_in(browser: Browser, url: str) -> None:
    from selenium.webdriver.common.by import By

    def submit_key() -> None:
        browser.driver.find_element(By.NAME, "key").send_keys(API_KEY)
        browser.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

    await _in_thread(browser.open, url + "/ui/")
    await browser.wait_for(lambda d: d.find_elements(By.NAME, "key"), what="the sign-in form")
    await _in_thread(submit_key)
    await browser.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview"), what="the overview")


def _shot(browser: Browser, name: str) -> None:
    if SHOTS:
        browser.screenshot(Path(SHOTS) / f"dashboard-{name}.png")


async def test_an_inbound_sms_appears_live_and_its_page_shows_the_timeline(
        browser: Browser, bridge: RunningBridge, sim: SimulatorControl, sink: Sink):
    """Signed in on the messages page, a new SMS shows up without a reload; its page lists its timeline."""
    from selenium.webdriver.common.by import By

    await _sign_in(browser, bridge.url)
    await _in_thread(_shot, browser, "overview")
    await _in_thread(browser.open, bridge.url + "/ui/messages")
    await browser.wait_for(lambda d: d.execute_script("return !document.getElementById('live-status').hidden"),
                           what="the live stream to open")
    sms_id = await sim.inbound("+4915888888888", "Is my order 1234 ready?")
    row = f'tr[data-sms-id="{sms_id}"]'
    await browser.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, row), what="the new row")
    await eventually(lambda: sink.delivered(), what="the webhook")
    await _in_thread(_shot, browser, "messages")
    await _in_thread(lambda: browser.driver.find_element(By.CSS_SELECTOR, f"{row} a").click())
    timeline = await browser.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li"), what="the timeline")
    assert "received" in timeline[0].text
    await browser.wait_for(lambda d: "delivered" in d.find_element(By.ID, "sms").text, what="the delivery outcome")
    await _in_thread(_shot, browser, "sms")


async def test_replay_in_a_dead_deliverys_row_reaches_the_sink(
        browser: Browser, bridge: RunningBridge, sim: SimulatorControl, sink: Sink):
    """A dead delivery's Replay button re-queues it, and the webhook sink receives the event."""
    from selenium.webdriver.common.by import By

    sink.answer(HOOK_PATH, Reply(500), Reply(500))
    await sim.inbound("+4915999999999", "hello")
    await eventually(lambda: bridge.app[STORE].fetch_all("SELECT id FROM outbox WHERE state = 'dead'"),
                     what="the delivery to be dead")
    await _sign_in(browser, bridge.url)
    await _in_thread(browser.open, bridge.url + "/ui/deliveries")
    button = await browser.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.state-dead button"),
                                    what="the Replay button")
    assert button[0].text == "Replay"
    await _in_thread(_shot, browser, "deliveries")
    await _in_thread(button[0].click)
    await browser.wait_for(lambda d: "re-queued" in d.find_element(By.CSS_SELECTOR, ".notice").text,
                           what="the notice")
    await eventually(lambda: sink.delivered(), what="the replayed webhook")
    for name, path in (("sends", "/ui/sends"), ("devices", "/ui/devices"), ("opt-outs", "/ui/opt-outs"),
                       ("rules", "/ui/rules")):
        await _in_thread(browser.open, bridge.url + path)
        await _in_thread(_shot, browser, name)


async def test_markup_in_an_sms_shows_as_text(browser: Browser, bridge: RunningBridge, sim: SimulatorControl):
    """An SMS whose body is an <img onerror> tag shows that text and creates no image."""
    from selenium.webdriver.common.by import By

    sms_id = await sim.inbound("+4915000000001", XSS)
    await eventually(lambda: bridge.received_ids(), what="the SMS to be recorded")
    await _sign_in(browser, bridge.url)
    await _in_thread(browser.open, f"{bridge.url}/ui/messages/{sms_id}")
    body = await browser.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "dd.body"), what="the SMS")
    assert body[0].text == XSS
    assert await _in_thread(browser.driver.find_elements, By.TAG_NAME, "img") == []
