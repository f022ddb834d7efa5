"""Webhook targets that fail: 500s, answers slower than the timeout, 410, 429 with Retry-After, nothing listening.

The DeliveryWorker runs against a real receiver on 127.0.0.1 with a clock the test moves, so retry delays
pass without waiting for them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from delivery_support import outbox, queue_webhook
from fake_clock import FakeClock
from ports import free_port
from webhook_sink import Reply, Sink, serve_sink

from bridge import delivery
from bridge.config import WebhookConfig
from bridge.delivery import DeliveryWorker
from bridge.events import Event
from bridge.store import Store

SCHEDULE = (0.0, 5.0, 5.0, 5.0, 5.0, 5.0)
STEP = 6.0  # past one retry delay of SCHEDULE with its 10% jitter


@pytest.fixture
def sink_worker(make_worker: Callable[..., DeliveryWorker]) -> Callable[..., DeliveryWorker]:
    """Builds a worker for one target named `sink` at `url`, retried on SCHEDULE with seeded jitter."""

    def make(url: str, **options: Any) -> DeliveryWorker:
        return make_worker(WebhookConfig(name="sink", url=url, retry=SCHEDULE, **options), rng=random.Random(1))

    return make


async def queue_event(store: Store, now: float) -> Event:
    """An sms.received event with one delivery to `sink`, stored as the pipeline stores them."""
    return await queue_webhook(store, now, "sink", rule="every-inbound")


async def outbox_row(store: Store) -> dict[str, object]:
    """The one outbox row's state, attempts, last status and last error."""
    [row] = await outbox(store)
    return {key: row[key] for key in ("state", "attempts", "last_status", "last_error")}


async def test_500s_are_retried_with_the_same_webhook_id_until_delivered(
        store: Store, sink: Sink, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """Three 500 answers then a 200: four attempts, all with the event's id as webhook-id, delivered once."""
    worker = sink_worker(sink.url + "/events")
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
        store: Store, sink: Sink, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """A receiver answering after the target's timeout counts as a failure and the same webhook-id is sent again."""
    worker = sink_worker(sink.url + "/events", timeout=0.3)
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
        store: Store, sink: Sink, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """410 Gone disables the target: nothing more is sent to it, the delivery waits, and a replay delivers it."""
    worker = sink_worker(sink.url + "/events", concurrency=1)
    first = await queue_event(store, clock())
    second = await queue_event(store, clock())
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
        store: Store, sink: Sink, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """A 429 with Retry-After: 120 delays the next attempt past the 5 s schedule, to 120 s."""
    worker = sink_worker(sink.url + "/events")
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
        store: Store, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """Connection refused is retried on schedule; once a receiver listens on the port the event is delivered once."""
    port = free_port()
    worker = sink_worker(f"http://127.0.0.1:{port}/events")
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
        store: Store, sink: Sink, clock: FakeClock, sink_worker: Callable[..., DeliveryWorker]) -> None:
    """Failing every attempt of the schedule leaves the delivery dead (kept, replayable), never silently gone."""
    worker = sink_worker(sink.url + "/events")
    event = await queue_event(store, clock())
    sink.answer("/events", *[Reply(503)] * len(SCHEDULE))
    for _ in SCHEDULE:
        await worker.deliver_due_once()
        clock.advance(STEP)
    assert (await outbox_row(store))["state"] == "dead"
    await delivery.replay(store, clock())
    await worker.deliver_due_once()
    assert sink.delivered() == {event.id: 1}
