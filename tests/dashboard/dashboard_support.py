"""Helpers of the dashboard tests: its config, a signed-in HTTP client, and headless Chromium under Selenium."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from running_bridge import API_KEY, write_bridge_config
from waiting import eventually

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK_PATH = "/events/t0ken-in-path"  # where on the sink the bridge posts its webhooks, a token in the path
XSS = "<img src=x onerror=alert(1)>"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
T = TypeVar("T")


def write_dashboard_config(directory: Path, sim_url: str, sink_url: str, *, server: str = "",
                           retry: str = "[0s, 100ms]", postgres_url: str | None = None, extra: str = "") -> Path:
    """The whole bridge's rules.yaml (write_bridge_config), each inbound SMS signed to the sink's HOOK_PATH (retried
    on `retry`) and no reply rule; `server` lines, `postgres_url` and `extra` as there."""
    return write_bridge_config(directory, sim_url, postgres_url=postgres_url, server=server, sink_url=sink_url,
                               hook_path=HOOK_PATH, secret=HOOK_SECRET, retry=retry, replies=False, extra=extra)


def csrf_of(page: str) -> str:
    """The CSRF token of the first form in a page."""
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1))


@dataclass
class Dashboard:
    """The dashboard over HTTP, as a browser without JavaScript uses it."""

    url: str
    session: aiohttp.ClientSession

    async def get(self, path: str, **params: Any) -> tuple[int, str]:
        """GET a page (redirects followed): its status and HTML."""
        async with self.session.get(self.url + path, params=params) as response:
            return response.status, await response.text()

    async def post(self, path: str, fields: dict[str, str], *, form_page: str | None = None) -> tuple[int, str]:
        """POST a form with the CSRF token of `form_page` (default: the page at `path`): status and HTML."""
        _, page = await self.get(form_page or path)
        async with self.session.post(self.url + path, data={"csrf_token": csrf_of(page), **fields}) as response:
            return response.status, await response.text()

    async def sign_in(self, key: str = API_KEY) -> aiohttp.ClientResponse:
        """Fill in the sign-in form with `key`."""
        _, page = await self.get("/ui/login")
        async with self.session.post(self.url + "/ui/login", data={"csrf_token": csrf_of(page), "key": key},
                                     allow_redirects=False) as response:
            await response.read()
            return response


# --- a real browser ----------------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,900")


@dataclass
class Browser:
    """A Selenium-driven headless Chromium."""

    driver: Any

    def open(self, url: str) -> None:
        """Load a page."""
        self.driver.get(url)

    async def wait_for(self, condition: Callable[[Any], T], what: str) -> T:
        """The first truthy value of `condition(driver)`, an element not (yet) on the page counting as not yet:
        the one bounded wait, each look in a thread so that the bridge's event loop runs on meanwhile."""
        from selenium.common.exceptions import NoSuchElementException

        def look() -> T | None:
            try:
                return condition(self.driver)
            except NoSuchElementException:
                return None

        return await eventually(lambda: asyncio.to_thread(look), what=what, interval=0.05)

    def screenshot(self, path: Path) -> None:
        """Save the page as a PNG."""
        self.driver.save_screenshot(str(path))


@contextlib.contextmanager
def browser_or_skip(profile: Path) -> Iterator[Browser]:
    """Start headless Chromium with a fresh profile, or skip the test saying what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    except WebDriverException as exc:
        pytest.skip(f"Chromium did not start: {exc.msg}")
    try:
        yield Browser(driver)
    finally:
        driver.quit()
