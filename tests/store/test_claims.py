"""Work shared by replicas on PostgreSQL: rows one replica claimed are not another's until it stops."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bridge.leadership import Leadership
from bridge.store import NewDelivery, NewSend, PostgresStore, Store, StoreError

NOW = 1_800_000_000.0


async def outbox_row(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_events([("evt_1", "k1", "sms.received", json.dumps({"id": "evt_1"}), NOW, None)])
        await tx.insert_delivery(NewDelivery("evt_1", "webhook", "crm", "r"), NOW)


async def alive(*stores: Store) -> None:
    """Each replica announces it is alive (as its leadership loop does)."""
    for store in stores:
        await Leadership(store, 60.0).renew()


async def test_a_delivery_claimed_by_a_live_replica_is_not_due_on_another(replicas: tuple[Store, Store]) -> None:
    """The replica that took a due outbox row keeps it: the other neither gets it nor waits for it."""
    a, b = replicas
    await alive(a, b)
    await outbox_row(a)
    assert len(await a.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ())) == 1
    assert await b.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ()) == []
    assert await b.next_delivery_ts("webhook", "crm", 0.0, ()) is None


async def test_a_stopped_replicas_deliveries_come_back(replicas: tuple[Store, Store]) -> None:
    """Once the claiming replica's liveness lease is gone, its taken rows are due on the others."""
    a, b = replicas
    await alive(a, b)
    await outbox_row(a)
    [row] = await a.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ())
    await Leadership(a, 60.0).release()
    assert [r["id"] for r in await b.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ())] == [row["id"]]


async def test_a_recorded_attempt_ends_the_claim(replicas: tuple[Store, Store]) -> None:
    """After its attempt is recorded a row is free again: a retry may be taken by any replica."""
    a, b = replicas
    await alive(a, b)
    await outbox_row(a)
    [row] = await a.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ())
    async with a.transaction() as tx:
        await tx.record_attempts([(row["id"], "pending", NOW + 1, "HTTP 500", 500)], NOW)
    assert len(await b.due_deliveries(NOW + 1, "webhook", "crm", 0.0, 10, ())) == 1


async def test_recovery_leaves_a_live_replicas_submissions_alone(replicas: tuple[Store, Store]) -> None:
    """Recipients another live replica is submitting are not put in doubt; a stopped replica's are."""
    a, b = replicas
    await alive(a, b)
    async with a.transaction() as tx:
        await tx.insert_send(NewSend("msg_1", "api", ("+491",), "hi", None, None), NOW)
        [row] = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitting([row["id"]], NOW)
    async with b.transaction() as tx:
        assert await tx.recover_submitting(NOW + 30, NOW) == 0
    await Leadership(a, 60.0).release()
    async with b.transaction() as tx:
        assert await tx.recover_submitting(NOW + 30, NOW) == 1


async def test_one_replica_at_a_time_reconciles_an_in_doubt_recipient(replicas: tuple[Store, Store]) -> None:
    """An in-doubt recipient taken for reconciliation by one replica is not due on the other meanwhile."""
    a, b = replicas
    await alive(a, b)
    async with a.transaction() as tx:
        await tx.insert_send(NewSend("msg_1", "api", ("+491",), "hi", None, None), NOW)
        [row] = await tx.due_recipients("queued", NOW, 10)
        await tx.set_in_doubt([(row["id"], "no answer", NOW, NOW + 600)], NOW)
    async with a.reading() as tx:
        assert len(await tx.due_recipients("in_doubt", NOW, 10)) == 1
    async with b.reading() as tx:
        assert await tx.due_recipients("in_doubt", NOW, 10) == []


async def test_an_idempotency_key_runs_on_one_replica_at_a_time(replicas: tuple[Store, Store]) -> None:
    """A key marked running by one replica is refused to another until released or answered."""
    a, b = replicas
    await alive(a, b)
    assert await a.claim_key("scope", "k", NOW, NOW - 86400)
    assert not await b.claim_key("scope", "k", NOW, NOW - 86400)
    await a.release_key("scope", "k")
    assert await b.claim_key("scope", "k", NOW, NOW - 86400)
    async with b.transaction() as tx:
        await tx.save_answers([("scope", "k", "hash", 202, "{}")], NOW)
    assert not await a.claim_key("scope", "k", NOW + 1, NOW - 86400)
    assert (await a.get_answer("scope", "k", NOW - 1))["status"] == 202


async def test_a_replica_stalled_inside_a_transaction_holds_the_others_up_no_longer_than_its_lease(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A replica that stops inside a write transaction (paused, frozen, cut off) has its session ended by the
    writers it keeps waiting once it has stood still for a lease: their writes all go on (none ends another that
    has just got the lock), and the stalled transaction, when it wakes, fails having written nothing."""
    lease = 0.5
    stalled, *others = [await PostgresStore.open(postgres_url, lease=lease) for _ in range(4)]
    inside, wake = asyncio.Event(), asyncio.Event()

    async def stall() -> None:
        async with stalled.transaction() as tx:
            await tx.set_cursor("stalled", "never")
            inside.set()
            await wake.wait()

    async def write(store: Store, name: str) -> None:
        async with store.transaction() as tx:
            await tx.set_cursor(name, "written")

    stopped = asyncio.create_task(stall())
    try:
        await asyncio.wait_for(inside.wait(), 10)
        began = time.monotonic()
        async with asyncio.timeout(10 * lease):
            await asyncio.gather(*(write(store, f"replica {i}") for i, store in enumerate(others)))
        assert time.monotonic() - began < 3 * lease
        wake.set()
        with pytest.raises(StoreError):
            await stopped
        assert [await others[0].get_cursor(f"replica {i}") for i in range(len(others))] == ["written"] * len(others)
        assert await others[0].get_cursor("stalled") is None
        assert len({r.args[0] for r in caplog.records if "ended PostgreSQL session" in r.msg}) == 1
    finally:
        wake.set()
        await asyncio.gather(stopped, return_exceptions=True)
        for store in (stalled, *others):
            await store.close()
