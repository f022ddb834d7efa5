"""Test support for the poller lane: a bridge harness (store, pipeline, poller) around a simulator on 127.0.0.1.

The harness's clock is the simulator's own clock, so a test moves time for both sides at once with
`advance()` (statuses walk, devices age, cursors and stuck timers move) and never sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from simulator_control import SimulatorControl

from bridge.config import Config, PollConfig
from bridge.gateway.client import GatewayClient
from bridge.gateway.models import OutgoingSms
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline
from bridge.poller import Poller
from bridge.rules import Router
from bridge.store import SqliteStore, Store
from bridge.templating import TemplateEngine

EMAIL, PASSWORD, HOOK_SECRET = "demo@example.com", "demo", "hook-s3cret"
# Small, round durations: tests step the shared clock across them explicitly.
TEST_POLL = PollConfig(interval=10, lookback=3600, overlap=60, backfill=0, devices_interval=30,
                       device_offline_after=600, stuck_after=900, unhealthy_after=300)


@dataclass
class Harness:
    """One simulated account and one bridge (store, pipeline, poller) polling it over HTTP."""

    simulator: SimulatorControl
    config: Config
    path: Path
    gateway_url: str | None = None  # where the bridge polls: the simulator's url unless a test serves its own
    store: Store = field(init=False)
    pipeline: Pipeline = field(init=False)
    poller: Poller = field(init=False)
    metrics: Metrics = field(init=False)

    def clock(self) -> float:
        """Now, on the clock the simulator and the bridge share."""
        return self.simulator.state.now()

    async def open(self) -> None:
        """Open the store and build the pipeline and poller (as a bridge start does)."""
        self.store = await SqliteStore.open(self.path, default_region=self.config.gateway.default_region)
        self.metrics = Metrics()
        router = Router.for_config(self.config, TemplateEngine(None))
        self.pipeline = Pipeline(self.store, router, self.config.safety, self.metrics, self.clock,
                                 default_region=self.config.gateway.default_region)
        gateway = GatewayClient(self.simulator.session, self.gateway_url or self.simulator.url, email=EMAIL,
                                password=PASSWORD, account_tz=self.config.gateway.timezone,
                                timeout=self.config.gateway.timeout)
        self.poller = Poller(self.config, self.store, gateway, self.pipeline, self.metrics, self.clock)

    async def restart(self) -> None:
        """Close the store and start a fresh bridge on the same database file."""
        await self.store.close()
        await self.open()

    def advance(self, seconds: float) -> None:
        """Move the shared clock forward."""
        self.simulator.state.advance(seconds)

    async def inbound(self, sender: str = "+4917642111111", body: str = "hello", **extra: Any) -> int:
        """Make the phone receive an SMS; returns its upstream id."""
        return await self.simulator.inbound(sender, body, **extra)

    async def submit(self, to: str = "+4917642111111", body: str = "Your code is 1234", *,
                     device_id: int = 1576, recorded: bool = True, at: datetime | None = None) -> int:
        """Send an SMS through the upstream; `recorded` stores it as the bridge's sender does (else: another tool's)."""
        sms_id = await self.poller.gateway.add_sms(OutgoingSms(to, body, device_id, time_to_send=at))
        if recorded:
            due = at.timestamp() if at is not None else None
            async with self.store.transaction() as db:
                await db.record_submitted(sms_id, to, body, device_id, 0, None, self.clock(), due)
        return sms_id

    async def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every recorded event's JSON, oldest first (only `type_` when given)."""
        rows = await self.store.fetch_all("SELECT type, payload FROM events ORDER BY rowid")
        return [json.loads(row["payload"]) for row in rows if type_ is None or row["type"] == type_]


MakeHarness = Callable[..., Awaitable[Harness]]
PushClient = Callable[[Harness], Awaitable[TestClient]]


class FakeUpstream:
    """An upstream on 127.0.0.1 whose getallsms answers whatever bytes the test sets, in every window.

    gettoken accepts the test credentials; getalldevices knows no device; other methods are refused.
    """

    def __init__(self) -> None:
        self.answer = b'{"error":0,"smss":[]}'

    def app(self) -> web.Application:
        """The aiohttp app serving the API paths the poller calls."""
        app = web.Application()
        app.router.add_post("/getdata/{method}", self._call)
        return app

    def answer_rows(self, rows: list[Any]) -> None:
        """Answer getallsms with `rows` as its `smss` list."""
        self.answer = json.dumps({"error": 0, "message": "OK", "smss": rows}).encode()

    async def _call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "gettoken":
            return web.json_response({"error": 0, "token": "fake-token"})
        if method == "getalldevices":
            return web.json_response({"error": 0, "device": []})
        if method == "getallsms":
            return web.Response(body=self.answer, content_type="application/json")
        return web.json_response({"error": 1, "message": f"{method} is not served here"})
