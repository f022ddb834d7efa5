"""Fixtures for the outbox worker: a store, a movable clock, a worker factory (the webhook sink and the HTTP
session are shared)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from fake_clock import FakeClock

from bridge.config import Config, WebhookConfig
from bridge.delivery import DeliveryWorker
from bridge.gateway.client import GatewayClient
from bridge.metrics import Metrics
from bridge.store import SqliteStore, Store
from bridge.templating import TemplateEngine


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
def metrics() -> Metrics:
    """A fresh metrics registry."""
    return Metrics()


@pytest.fixture
async def make_worker(store: Store, session: aiohttp.ClientSession, clock: FakeClock,
                      metrics: Metrics) -> AsyncIterator[Callable[..., DeliveryWorker]]:
    """Builds a worker for the given webhook targets, its retry jitter drawn from `rng` if given (stopped at the end
    of the test)."""
    workers: list[DeliveryWorker] = []

    def make(*targets: WebhookConfig, gateway: GatewayClient | None = None,
             rng: random.Random | None = None) -> DeliveryWorker:
        config = Config(webhooks={t.name: t for t in targets})
        gateway = gateway or GatewayClient(session, "http://127.0.0.1:9", token="unused")
        worker = DeliveryWorker(config, store, session, TemplateEngine(None), gateway, metrics, clock, rng=rng)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop(grace=0)
