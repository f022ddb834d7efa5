"""The storage contract of the device pool: counts, assignments, members and failovers, on every backend."""

from __future__ import annotations

from sample_rows import NOW, a_message, a_send

from bridge.pool import EXHAUSTED
from bridge.store import NewSend, Store
from bridge.store.pool import MemberCounts

BOTH_ENGINES = True  # every test runs on SQLite, then on PostgreSQL
DAY, MONTH = "2027-01-15", "2027-01"


async def test_counts_are_per_member_day_and_distinct_number_of_the_month(store: Store) -> None:
    """Each SMS counts once for its member's day; a number counts once per member and month."""
    async with store.transaction() as tx:
        await tx.count_pool_sends([(1576, 0, "+491"), (1576, 0, "+491"), (1576, 0, "+492"), (1297, 0, "+491")],
                                  DAY, MONTH)
        await tx.count_pool_sends([(1576, 0, "+493")], "2027-01-16", MONTH)
        await tx.count_pool_sends([(1576, 0, "+494")], "2027-02-01", "2027-02")
    counts = await store.pool_counts(DAY, MONTH, ["+491", "+499"])
    assert counts == {(1576, 0): MemberCounts(3, 3, frozenset({"+491"})),
                      (1297, 0): MemberCounts(1, 1, frozenset({"+491"}))}
    assert (await store.pool_counts("2027-01-16", MONTH))[(1576, 0)].sent_today == 1


async def test_a_count_taken_back_never_goes_below_zero(store: Store) -> None:
    """Taking back an SMS of a day lowers that day's count, never under zero."""
    async with store.transaction() as tx:
        await tx.count_pool_sends([(1576, 0, "+491")], DAY, MONTH)
        await tx.uncount_pool_sends([(1576, 0), (1576, 0)], DAY)
    assert (await store.pool_counts(DAY, MONTH))[(1576, 0)].sent_today == 0


async def test_sticky_assignments_are_kept_and_replaced(store: Store) -> None:
    """The last member a number was assigned is what reads back."""
    async with store.transaction() as tx:
        await tx.assign_pool([("+491", 1576, 0), ("+492", 1297, 0)], NOW)
        await tx.assign_pool([("+491", 1576, 1)], NOW + 1)
        assert await tx.pool_assignments(["+491", "+492", "+493"]) == {"+491": (1576, 1), "+492": (1297, 0)}


async def test_a_placed_recipient_reads_back_with_its_member(store: Store) -> None:
    """A pooled send has no device; its recipient's member is what due rows and the send's rows show."""
    async with store.transaction() as tx:
        await tx.insert_send(NewSend("msg_1", "api", ("+491",), "hi", None, None), NOW)
        [row] = await tx.due_recipients("queued", NOW, 10)
        assert (row["device_id"], row["send_device_id"], row["member_device"]) == (None, None, None)
        await tx.set_recipient_members([(row["id"], 1297, 1)], NOW)
        [placed] = await tx.due_recipients("queued", NOW, 10)
    assert (placed["device_id"], placed["sim"], placed["member_device"]) == (1297, 1, 1297)
    _, [recipient] = await store.get_send("msg_1")
    assert (recipient["device_id"], recipient["sim"], recipient["position"]) == (1297, 1, 0)


async def test_a_failed_pooled_sms_fails_over_once_keeping_its_attempt(store: Store) -> None:
    """A placed recipient whose SMS failed is a candidate once; failing over keeps the attempt, avoids its
    member, queues it again with a new correlation id, and the old SMS stays claimed."""
    async with store.transaction() as tx:
        await tx.insert_sends([NewSend("msg_1", "api", ("+491",), "hi", None, None), a_send("msg_2", "+492")], NOW)
        pooled, explicit = await tx.due_recipients("queued", NOW, 10)
        await tx.set_recipient_members([(pooled["id"], 1576, 0)], NOW)
        await tx.mark_submitting([pooled["id"], explicit["id"]], NOW)
        await tx.mark_submitted([(pooled["id"], 501, NOW), (explicit["id"], 502, NOW)], NOW)
        await tx.insert_messages([a_message(501, "out", 10), a_message(502, "out", 10)])
        [candidate] = await tx.failover_candidates([9, 10], NOW - 60, 10)
        assert await tx.failover_candidates([9], NOW - 60, 10) == []
        assert await tx.failover_candidates([10], NOW + 60, 10) == []
        await tx.fail_over([(candidate["id"], 501, 1576, 0, 77)], NOW + 5)
        assert await tx.failover_candidates([9, 10], NOW - 60, 10) == []
        [again] = await tx.due_recipients("queued", NOW + 5, 10)
        assert await tx.assigned_sms_ids([501]) == {501}
    assert (again["id"], again["avoid_device"], again["avoid_sim"], again["correlation_id"]) == (
        pooled["id"], 1576, 0, 77)
    assert again["member_device"] is None
    assert [tuple(r) for r in await store.recipient_attempts("msg_1")] == [(0, 501, 1576, 0, 10)]


async def test_recipients_waiting_for_the_pool_are_counted(store: Store) -> None:
    """Queued recipients whose reason is pool_exhausted are the pool's waiting ones."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_1", "+491", "+492"), NOW)
        first, _ = await tx.due_recipients("queued", NOW, 10)
        await tx.set_recipients("queued", [(first["id"], EXHAUSTED, NOW + 60)], NOW)
    assert await store.pool_waiting() == 1
