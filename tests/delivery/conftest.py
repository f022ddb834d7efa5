"""Fixtures for the outbox worker: a recording webhook sink, a store, a movable clock, a worker factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from delivery_support import FakeClock, Sink

from bridge.config import Config, WebhookConfig
from bridge.delivery import DeliveryWorker
from bridge.gateway.client import GatewayClient
from bridge.metrics import Metrics
from bridge.store import SqliteStore, Store
from bridge.templating import TemplateEngine


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A running webhook sink."""
    recorder = Sink()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.base_url = f"http://127.0.0.1:{port}"
    yield recorder
    recorder.release_all()
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves."""
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store in a temporary directory."""
    db = await SqliteStore.open(tmp_path / "bridge.db")
    yield db
    await db.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP client session the worker posts with."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def metrics() -> Metrics:
    """A fresh metrics registry."""
    return Metrics()


@pytest.fixture
async def make_worker(store: Store, session: aiohttp.ClientSession, clock: FakeClock,
                      metrics: Metrics) -> AsyncIterator[Callable[..., DeliveryWorker]]:
    """Builds a worker for the given webhook targets (stopped at the end of the test)."""
    workers: list[DeliveryWorker] = []

    def make(*targets: WebhookConfig, gateway: GatewayClient | None = None) -> DeliveryWorker:
        config = Config(webhooks={t.name: t for t in targets})
        gateway = gateway or GatewayClient(session, "http://127.0.0.1:9", token="unused")
        worker = DeliveryWorker(config, store, session, TemplateEngine(None), gateway, metrics, clock)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop(grace=0)


