"""Outgoing messages: every status change is one `sms.status`, followed at a cost bounded by what is in flight."""

from __future__ import annotations

from datetime import datetime, timezone

from poller_support import TEST_POLL, Harness

from bridge.poller import FEW_STATUS_CHECKS


PACE = 60.0  # the simulator's seconds per status step (harness default: far above any scheduling delay)


def _steps(events: list[dict]) -> list[tuple[int | None, int]]:
    return [(e["sms"]["previous_status"], e["sms"]["status"]) for e in events]


async def _push_cursor_past(bridge: Harness, seconds: float) -> None:
    """Let time pass and a newer SMS arrive, so the poll window moves on past older messages."""
    bridge.advance(seconds)
    await bridge.inbound(body="newer")
    await bridge.poller.poll_once()


async def test_each_status_step_is_one_event_in_order(bridge: Harness) -> None:
    """A message walking 1 -> 3 -> 2 -> 6 -> 7 gives four sms.status events in order, each with its previous status."""
    await bridge.poller.poll_once()
    await bridge.submit()
    for _ in range(6):
        await bridge.poller.poll_once()
        bridge.advance(PACE)
    events = await bridge.events("sms.status")
    assert _steps(events) == [(1, 3), (3, 2), (2, 6), (6, 7)]
    assert [e["sms"]["status_name"] for e in events] == ["queued", "taken", "sent", "delivered"]


async def test_a_status_unchanged_over_many_polls_then_moving_is_one_event(bridge: Harness) -> None:
    """A message listed the same way poll after poll gives nothing new, and one event once its status moves on,
    also after a restart."""
    await bridge.poller.poll_once()
    await bridge.submit()
    for _ in range(5):
        await bridge.poller.poll_once()
        bridge.advance(PACE / 10)
    quiet = await bridge.events("sms.status")
    await bridge.restart()
    await bridge.poller.poll_once()
    bridge.advance(PACE)
    await bridge.poller.poll_once()
    await bridge.poller.poll_once()
    assert (quiet, _steps(await bridge.events("sms.status"))) == ([], [(1, 3)])


async def test_a_jump_seen_in_one_poll_is_one_event(bridge: Harness) -> None:
    """A message that went from pending to delivered between two polls gives one event 1 -> 7."""
    await bridge.poller.poll_once()
    await bridge.submit()
    await bridge.poller.poll_once()
    bridge.advance(10 * PACE)
    await bridge.poller.poll_once()
    assert _steps(await bridge.events("sms.status")) == [(1, 7)]


async def test_status_events_are_not_repeated_after_restart(bridge: Harness) -> None:
    """After a restart on the same file, status changes already emitted are not emitted again."""
    await bridge.poller.poll_once()
    await bridge.submit()
    bridge.advance(3 * PACE)
    await bridge.poller.poll_once()
    await bridge.restart()
    await bridge.poller.poll_once()
    bridge.advance(PACE)
    await bridge.poller.poll_once()
    assert _steps(await bridge.events("sms.status")) == [(1, 6), (6, 7)]


async def test_outgoing_message_of_another_tool_is_followed(bridge: Harness) -> None:
    """An SMS sent by another tool is first reported with previous_status null, then followed like the bridge's own."""
    await bridge.poller.poll_once()
    await bridge.submit(recorded=False)
    bridge.advance(2 * PACE)
    await bridge.poller.poll_once()
    bridge.advance(PACE)
    await bridge.poller.poll_once()
    assert _steps(await bridge.events("sms.status")) == [(None, 2), (2, 6)]


async def test_outgoing_message_stuck_pending_is_reported_once(bridge: Harness) -> None:
    """A message still pending after poll.stuck_after gives exactly one sms.stuck."""
    await bridge.poller.poll_once()
    sms_id = await bridge.submit()
    await bridge.simulator.post("status", {"sms_id": sms_id, "status": 1})
    bridge.advance(TEST_POLL.stuck_after - 60)
    await bridge.poller.poll_once()
    assert await bridge.events("sms.stuck") == []
    for _ in range(3):
        bridge.advance(60)
        await bridge.poller.poll_once()
    (stuck,) = await bridge.events("sms.stuck")
    assert stuck["sms"]["id"] == sms_id and stuck["sms"]["status"] == 1


async def test_scheduled_message_is_not_stuck_before_it_is_due(bridge: Harness) -> None:
    """A message scheduled for later is not reported stuck while it waits for its send time."""
    await bridge.poller.poll_once()
    due = datetime.fromtimestamp(bridge.clock() + 2 * TEST_POLL.stuck_after, timezone.utc)
    await bridge.submit(at=due)
    bridge.advance(TEST_POLL.stuck_after + 60)
    await bridge.poller.poll_once()
    assert await bridge.events("sms.stuck") == []


async def test_few_messages_behind_the_window_are_asked_for_one_by_one(bridge: Harness) -> None:
    """In-flight messages older than the window, when few, are checked with getsmsstatus each."""
    await bridge.poller.poll_once()
    ids = [await bridge.submit(body=f"m{i}") for i in range(3)]
    for sms_id in ids:
        await bridge.simulator.post("status", {"sms_id": sms_id, "status": 6})
    await _push_cursor_past(bridge, TEST_POLL.overlap + 30)
    before = await bridge.simulator.calls("getsmsstatus")
    await bridge.simulator.post("status", {"sms_id": ids[0], "status": 7})
    await bridge.poller.poll_once()
    assert await bridge.simulator.calls("getsmsstatus") - before == 3
    assert _steps(await bridge.events("sms.status"))[-1] == (6, 7)


async def test_many_messages_behind_the_window_widen_the_one_window(bridge: Harness) -> None:
    """More than a few in-flight messages behind the window are followed by one wider getallsms, no getsmsstatus."""
    await bridge.poller.poll_once()
    ids = [await bridge.submit(body=f"m{i}") for i in range(FEW_STATUS_CHECKS + 2)]
    for sms_id in ids:
        await bridge.simulator.post("status", {"sms_id": sms_id, "status": 6})
    await _push_cursor_past(bridge, TEST_POLL.overlap + 30)
    status_calls, list_calls = await bridge.simulator.calls("getsmsstatus"), await bridge.simulator.calls("getallsms")
    await bridge.simulator.post("status", {"sms_id": ids[-1], "status": 8})
    await bridge.poller.poll_once()
    assert await bridge.simulator.calls("getsmsstatus") == status_calls
    assert await bridge.simulator.calls("getallsms") == list_calls + 1
    assert _steps(await bridge.events("sms.status"))[-1] == (6, 8)


async def test_messages_older_than_lookback_are_no_longer_followed(bridge: Harness) -> None:
    """Once an in-flight message is older than poll.lookback, no poll asks for it any more."""
    await bridge.poller.poll_once()
    sms_id = await bridge.submit()
    await bridge.simulator.post("status", {"sms_id": sms_id, "status": 6})
    await _push_cursor_past(bridge, TEST_POLL.lookback + 1)
    before = await bridge.simulator.calls("getsmsstatus")
    await bridge.poller.poll_once()
    assert await bridge.simulator.calls("getsmsstatus") == before


async def test_idle_poll_makes_one_call(bridge: Harness) -> None:
    """With nothing in flight, a poll is a single getallsms call."""
    await bridge.poller.poll_once()
    before = {m: await bridge.simulator.calls(m) for m in ("getallsms", "getsmsstatus", "getalldevices")}
    await bridge.poller.poll_once()
    after = {m: await bridge.simulator.calls(m) for m in before}
    assert after == {**before, "getallsms": before["getallsms"] + 1}


async def test_message_the_upstream_does_not_know_does_not_block_polling(bridge: Harness) -> None:
    """An in-flight message getsmsstatus refuses (deleted upstream) is dropped, and polls keep succeeding."""
    await bridge.poller.poll_once()
    async with bridge.store.transaction() as db:
        await db.record_submitted(1, "+4917642111111", "gone", 1576, 0, None, bridge.clock())
    await _push_cursor_past(bridge, TEST_POLL.overlap + 30)
    await bridge.inbound(body="still flowing")
    results = [await bridge.poller.poll_once() for _ in range(2)]
    assert all(r.ok for r in results)
    assert [e["sms"]["body"] for e in await bridge.events()][-1] == "still flowing"
