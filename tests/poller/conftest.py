"""Fixtures for the poller, pipeline and push path: simulators on 127.0.0.1 and bridge harnesses around them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from poller_support import EMAIL, HOOK_SECRET, PASSWORD, TEST_POLL, FakeUpstream, Harness, MakeHarness, PushClient
from simulator_control import MakeSimulator

from bridge.appkeys import CONFIG, POLLER
from bridge.config import Config, GatewayConfig, PollConfig, RuleConfig, SafetyConfig, Secret
from bridge.gateway.simulator import serve_simulator
from bridge.push import gateway_push


@pytest.fixture
async def make_harness(tmp_path: Path, make_simulator: MakeSimulator) -> AsyncIterator[MakeHarness]:
    """Builds harnesses: `await make_harness(timezone=..., poll=..., rules=..., pace=..., upstream=...)`; all closed
    at the end. With `upstream` (a FakeUpstream) the bridge polls it instead of the simulator, on the same clock."""
    async with AsyncExitStack() as stack:
        built: list[Harness] = []

        async def make(*, timezone: str = "Europe/Paris", poll: PollConfig = TEST_POLL,
                       rules: tuple[RuleConfig, ...] = (), safety: SafetyConfig = SafetyConfig(),
                       pace: float = 60.0, webhook_secret: str | None = HOOK_SECRET, timeout: float = 5.0,
                       upstream: FakeUpstream | None = None, default_region: str | None = None) -> Harness:
            simulator = await make_simulator(timezone=timezone, email=EMAIL, password=PASSWORD, pace=pace, seed=7)
            gateway = GatewayConfig(email=EMAIL, password=Secret(PASSWORD), timezone=timezone, device_id=1576,
                                    webhook_secret=Secret(webhook_secret) if webhook_secret else None,
                                    timeout=timeout, default_region=default_region)
            config = Config(gateway=gateway, poll=poll, rules=rules, safety=safety)
            fake_url = await stack.enter_async_context(serve_simulator(upstream.app())) if upstream else None
            harness = Harness(simulator, config, tmp_path / f"bridge{len(built)}.db", fake_url)
            await harness.open()
            built.append(harness)
            return harness

        try:
            yield make
        finally:
            for harness in built:
                await harness.store.close()


@pytest.fixture
async def bridge(make_harness: MakeHarness) -> Harness:
    """A bridge on a Europe/Paris account with no rules."""
    return await make_harness()


@pytest.fixture
def push_client(aiohttp_client: Any) -> PushClient:
    """A small app that mounts only the push handler, for a given harness."""

    async def make(bridge: Harness) -> TestClient:
        app = web.Application()
        app[CONFIG] = bridge.config
        app[POLLER] = bridge.poller
        app.router.add_post("/v1/gateway/{secret}", gateway_push)
        return await aiohttp_client(app)

    return make
