"""Webhook targets that fail: 500s, answers slower than the timeout, 410, 429 with Retry-After, nothing listening.

The DeliveryWorker runs against a real receiver on 127.0.0.1 with a clock the test moves, so retry delays
pass without waiting for them.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from reliability_support import FakeClock, free_port
from webhook_sink import Reply, Sink, serve_sink

from bridge import delivery
from bridge.config import Config, WebhookConfig
from bridge.delivery import DeliveryWorker
from bridge.events import Event, EventType, SmsFacts, sms_event
from bridge.gateway.client import GatewayClient
from bridge.gateway.models import Status
from bridge.metrics import Metrics
from bridge.store import NewDelivery, SqliteStore, Store
from bridge.templating import TemplateEngine

SCHEDULE = (0.0, 5.0, 5.0, 5.0, 5.0, 5.0)
STEP = 6.0  # past one retry delay of SCHEDULE with its 10% jitter


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store."""
    opened = await SqliteStore.open(tmp_path / "bridge.db")
    yield opened
    await opened.close()


@pytest.fixture
async def make_worker(store: Store) -> AsyncIterator[Callable[..., DeliveryWorker]]:
    """Builds a DeliveryWorker for one target named `sink` at `url`, on the test's clock; stops it at the end."""
    workers: list[DeliveryWorker] = []
    async with aiohttp.ClientSession() as session:

        def make(url: str, clock: FakeClock, **options: object) -> DeliveryWorker:
            hook = WebhookConfig(name="sink", url=url, retry=SCHEDULE, **options)
            gateway = GatewayClient(session, "http://127.0.0.1:9", token="unused")
            worker = DeliveryWorker(Config(webhooks={"sink": hook}), store, session, TemplateEngine(None), gateway,
                                    Metrics(), clock, rng=random.Random(1))
            workers.append(worker)
            return worker

        yield make
        for worker in workers:
            await worker.stop(grace=0)


async def queue_event(store: Store, now: float, sms_id: int = 62050971) -> Event:
    """An sms.received event with one delivery to `sink`, stored as the pipeline stores them."""
    created = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    event = sms_event(EventType.RECEIVED, SmsFacts(sms_id, "+4912312312332", None, "INFO please", 1576, 0,
                                                   Status.RECEIVED, None, created, None), created)
    async with store.transaction() as db:
        await db.insert_events([(event.id, event.dedupe_key, str(event.type), json.dumps(event.to_json()),
                                 now, sms_id)])
        await db.insert_delivery(NewDelivery(event.id, "webhook", "sink", "every-inbound"), now)
    return event


async def outbox_row(store: Store) -> dict[str, object]:
    """The one outbox row."""
    rows = await store.fetch_all("SELECT state, attempts, last_status, last_error FROM outbox")
    assert len(rows) == 1
    return dict(rows[0])


async def test_500s_are_retried_with_the_same_webhook_id_until_delivered(
        store: Store, sink: Sink, make_worker: Callable[..., DeliveryWorker]) -> None:
    """Three 500 answers then a 200: four attempts, all with the event's id as webhook-id, delivered once."""
    clock = FakeClock()
    worker = make_worker(sink.url + "/events", clock)
    event = await queue_event(store, clock())
    sink.answer("/events", Reply(500), Reply(500), Reply(500))
    for _ in range(4):
        assert await worker.deliver_due_once() == 1
        clock.advance(STEP)
    assert [r.status for r in sink.received] == [500, 500, 500, 200]
    assert set(sink.attempts()) == {event.id}
    assert sink.delivered() == {event.id: 1}
    assert await outbox_row(store) == {"state": "delivered", "attempts": 4, "last_status": 200, "last_error": None}


async def test_an_answer_slower_than_the_timeout_is_retried_and_then_delivered(
        store: Store, sink: Sink, make_worker: Callable[..., DeliveryWorker]) -> None:
    """A receiver answering after the target's timeout counts as a failure and the same webhook-id is sent again."""
    clock = FakeClock()
    worker = make_worker(sink.url + "/events", clock, timeout=0.3)
    event = await queue_event(store, clock())
    sink.answer("/events", Reply(200, delay=5.0))
    assert await worker.deliver_due_once() == 1
    row = await outbox_row(store)
    assert row["state"] == "pending" and "0.3" in str(row["last_error"])
    clock.advance(STEP)
    assert await worker.deliver_due_once() == 1
    assert (await outbox_row(store))["state"] == "delivered"
    assert sink.attempts() == {event.id: 2}


async def test_410_disables_the_target_and_keeps_the_delivery_for_replay(
        store: Store, sink: Sink, make_worker: Callable[..., DeliveryWorker]) -> None:
    """410 Gone disables the target: nothing more is sent to it, the delivery waits, and a replay delivers it."""
    clock = FakeClock()
    worker = make_worker(sink.url + "/events", clock, concurrency=1)
    first = await queue_event(store, clock())
    second = await queue_event(store, clock(), sms_id=62050972)
    sink.answer("/events", Reply(410))
    await worker.deliver_due_once()
    gone = len(sink.received)
    assert [row["name"] for row in await store.disabled_targets()] == ["sink"]
    clock.advance(10 * STEP)
    assert await worker.deliver_due_once() == 0
    assert len(sink.received) == gone
    assert {row["state"] for row in await store.fetch_all("SELECT state FROM outbox")} == {"pending"}
    await delivery.replay(store, clock(), target="sink")
    await worker.deliver_due_once()
    assert set(sink.delivered()) == {first.id, second.id}


async def test_retry_after_on_429_holds_the_target_back_that_long(
        store: Store, sink: Sink, make_worker: Callable[..., DeliveryWorker]) -> None:
    """A 429 with Retry-After: 120 delays the next attempt past the 5 s schedule, to 120 s."""
    clock = FakeClock()
    worker = make_worker(sink.url + "/events", clock)
    event = await queue_event(store, clock())
    sink.answer("/events", Reply(429, {"Retry-After": "120"}))
    await worker.deliver_due_once()
    clock.advance(60)
    assert await worker.deliver_due_once() == 0
    assert len(sink.received) == 1
    clock.advance(61)
    assert await worker.deliver_due_once() == 1
    assert sink.delivered() == {event.id: 1}


async def test_a_target_nobody_listens_on_is_retried_until_it_comes_up(
        store: Store, make_worker: Callable[..., DeliveryWorker]) -> None:
    """Connection refused is retried on schedule; once a receiver listens on the port the event is delivered once."""
    clock = FakeClock()
    port = free_port()
    worker = make_worker(f"http://127.0.0.1:{port}/events", clock)
    event = await queue_event(store, clock())
    for _ in range(2):
        assert await worker.deliver_due_once() == 1
        clock.advance(STEP)
    row = await outbox_row(store)
    assert row["state"] == "pending" and row["attempts"] == 2 and "connect" in str(row["last_error"])
    async with serve_sink(port) as late:
        assert await worker.deliver_due_once() == 1
        assert late.delivered() == {event.id: 1}
    assert (await outbox_row(store))["state"] == "delivered"


async def test_a_receiver_failing_past_the_schedule_is_dead_lettered_not_dropped(
        store: Store, sink: Sink, make_worker: Callable[..., DeliveryWorker]) -> None:
    """Failing every attempt of the schedule leaves the delivery dead (kept, replayable), never silently gone."""
    clock = FakeClock()
    worker = make_worker(sink.url + "/events", clock)
    event = await queue_event(store, clock())
    sink.answer("/events", *[Reply(503)] * len(SCHEDULE))
    for _ in SCHEDULE:
        await worker.deliver_due_once()
        clock.advance(STEP)
    assert (await outbox_row(store))["state"] == "dead"
    await delivery.replay(store, clock())
    await worker.deliver_due_once()
    assert sink.delivered() == {event.id: 1}
