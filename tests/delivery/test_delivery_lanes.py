"""Concurrency per target, independence of targets, the background loop and at-least-once after a stop."""

from __future__ import annotations

import asyncio

from delivery_support import outbox, queue_webhook, target
from waiting import eventually
from webhook_sink import Reply

from bridge.delivery import MAX_IDLE

WOKEN = MAX_IDLE / 3  # well inside the loop's longest idle sleep: what happens by then, a wake-up made happen


async def attempts_recorded(store, count: int) -> bool:
    """True once the only outbox row has `count` attempts recorded."""
    [row] = await outbox(store)
    return row["attempts"] == count


async def test_concurrency_limit_is_respected(sink, store, make_worker, clock):
    """No more requests than the target's `concurrency` are in flight at once."""
    worker = make_worker(target(sink, concurrency=3))
    gate = sink.hold("/crm")
    for _ in range(10):
        await queue_webhook(store, clock())
    run = asyncio.create_task(worker.deliver_due_once())
    await eventually(lambda: sink.in_flight["/crm"] == 3, what="three requests in flight")
    assert worker.in_flight("crm") == 3
    gate.set()
    assert await run == 10
    assert sink.max_in_flight["/crm"] == 3
    assert len(sink.delivered("/crm")) == 10


async def test_a_slow_target_does_not_block_another(sink, store, make_worker, clock):
    """While every slot of a slow target is held, another target's deliveries go through."""
    worker = make_worker(target(sink, "slow", concurrency=2), target(sink, "fast"))
    gate = sink.hold("/slow")
    for _ in range(5):
        await queue_webhook(store, clock(), "slow")
    fast = [await queue_webhook(store, clock(), "fast") for _ in range(3)]
    await worker.start()
    worker.wake()
    await eventually(lambda: len(sink.delivered("/fast")) == 3, what="the fast target's three deliveries",
                     timeout=WOKEN)
    assert sink.delivered("/fast") == {e.id: 1 for e in fast}
    assert sink.in_flight["/slow"] == 2
    gate.set()
    await eventually(lambda: len(sink.delivered("/slow")) == 5, what="the slow target's five deliveries",
                     timeout=WOKEN)


async def test_the_loop_delivers_what_it_is_woken_for(sink, store, make_worker, clock):
    """A running worker delivers a row committed after it started once woken."""
    worker = make_worker(target(sink))
    await worker.start()
    event = await queue_webhook(store, clock())
    worker.wake()
    await eventually(lambda: sink.delivered("/crm") == {event.id: 1}, what="the delivery", timeout=WOKEN)


async def test_the_loop_retries_when_the_row_falls_due(sink, store, make_worker, clock):
    """A running worker makes the next attempt once the clock reaches the row's due time."""
    worker = make_worker(target(sink, retry=(0, 5)))
    sink.answer("/crm", Reply(500))
    event = await queue_webhook(store, clock())
    await worker.start()
    worker.wake()
    await eventually(lambda: attempts_recorded(store, 1), what="the first attempt", timeout=WOKEN)
    clock.advance(6)
    worker.wake()
    await eventually(lambda: sink.delivered("/crm") == {event.id: 1}, what="the retry's delivery", timeout=WOKEN)


async def test_a_retry_due_at_once_is_made_without_waiting_for_the_idle_timeout(sink, store, make_worker, clock):
    """A running worker, woken once, makes a failed row's retry as soon as it is due (here at once), not only
    when its longest idle sleep ends."""
    worker = make_worker(target(sink, retry=(0, 0)))
    sink.answer("/crm", Reply(500))
    event = await queue_webhook(store, clock())
    await worker.start()
    worker.wake()
    await eventually(lambda: sink.delivered("/crm") == {event.id: 1}, what="the retry's delivery", timeout=WOKEN)


async def test_an_attempt_cut_by_stop_is_made_again_with_the_same_id(sink, store, make_worker, clock):
    """An attempt still running when the worker stops stays pending and is re-sent later with the same webhook-id."""
    first = make_worker(target(sink))
    gate = sink.hold("/crm")
    event = await queue_webhook(store, clock())
    run = asyncio.create_task(first.deliver_due_once())
    await eventually(lambda: sink.in_flight["/crm"] == 1, what="the attempt to be in flight")
    await first.stop(grace=0)
    await run
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("pending", 0)

    gate.set()
    second = make_worker(target(sink))
    assert await second.deliver_due_once() == 1
    assert [r.webhook_id for r in sink.requests("/crm")] == [event.id, event.id]
    [row] = await outbox(store)
    assert row["state"] == "delivered"


async def test_stop_lets_attempts_in_flight_finish(sink, store, make_worker, clock):
    """An attempt that ends within the stop grace is recorded as delivered."""
    worker = make_worker(target(sink))
    gate = sink.hold("/crm")
    await queue_webhook(store, clock())
    await worker.start()
    worker.wake()
    await eventually(lambda: sink.in_flight["/crm"] == 1, what="the attempt to be in flight", timeout=WOKEN)
    stopping = asyncio.create_task(worker.stop())
    gate.set()
    await stopping
    [row] = await outbox(store)
    assert row["state"] == "delivered"


async def test_rows_for_an_unconfigured_target_wait(sink, store, make_worker, clock):
    """A row whose target is not in the configuration is left pending, not attempted."""
    worker = make_worker(target(sink))
    await queue_webhook(store, clock(), "removed")
    assert await worker.deliver_due_once() == 0
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("pending", 0)
