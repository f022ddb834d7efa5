"""Inbound SMS: each one becomes exactly one `sms.received`, across restarts, zones and first starts."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from poller_support import TEST_POLL, Harness, MakeHarness

from bridge.poller import CURSOR, RECORD_BATCH
from bridge.store import StoreUnavailable


async def test_new_inbound_sms_gives_one_received_event(bridge: Harness) -> None:
    """An SMS that arrives after the first poll is emitted once as sms.received with its sender and text."""
    await bridge.poller.poll_once()
    sms_id = await bridge.inbound("+4917642111111", "INFO please", device_id=1297)
    bridge.advance(10)
    await bridge.poller.poll_once()
    (event,) = await bridge.events()
    assert event["type"] == "sms.received"
    assert event["sms"]["id"] == sms_id
    assert event["sms"]["from"] == "+4917642111111"
    assert event["sms"]["body"] == "INFO please"
    assert event["sms"]["status"] == 5 and event["sms"]["device_id"] == 1297


async def test_received_event_names_the_receiving_sim_once_devices_are_known(bridge: Harness) -> None:
    """With getalldevices known, `to` is the number of the single-SIM device that received the SMS."""
    await bridge.poller.check_devices()
    await bridge.poller.poll_once()
    await bridge.inbound(device_id=1297)
    await bridge.poller.poll_once()
    (event,) = await bridge.events()
    assert event["sms"]["to"] == "+4915900000002"


async def test_a_poll_cut_short_between_its_transactions_emits_each_sms_once(
        bridge: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll finding more SMS than one transaction holds, cut short after its first, emits the rest on the next
    poll: every SMS once, none twice, and the cursor moves only with the last."""
    await bridge.poller.poll_once()
    cursor = await bridge.store.get_cursor(CURSOR)
    count = RECORD_BATCH + 7
    for n in range(count):
        bridge.simulator.state.add_inbound(f"+49176{n:08d}", f"number {n}")
    bridge.advance(10)
    record, calls = bridge.pipeline.record, []

    async def fails_after_the_first(observations, cursors=None, fence=None):  # type: ignore[no-untyped-def]
        calls.append(len(observations))
        if len(calls) > 1:
            raise StoreUnavailable("the disk is full")
        return await record(observations, cursors, fence)

    monkeypatch.setattr(bridge.pipeline, "record", fails_after_the_first)
    assert not (await bridge.poller.poll_once()).ok
    first = len(await bridge.events())
    unmoved = await bridge.store.get_cursor(CURSOR)
    monkeypatch.setattr(bridge.pipeline, "record", record)
    assert (await bridge.poller.poll_once()).events == count - first
    bodies = [e["sms"]["body"] for e in await bridge.events()]
    assert (calls, first, unmoved) == ([RECORD_BATCH, 7], RECORD_BATCH, cursor)
    assert sorted(bodies) == sorted(f"number {n}" for n in range(count))


async def test_polling_again_repeats_nothing(bridge: Harness) -> None:
    """Later polls whose overlap window still covers a message emit nothing for it again."""
    await bridge.poller.poll_once()
    await bridge.inbound()
    for _ in range(3):
        await bridge.poller.poll_once()
        bridge.advance(5)
    assert len(await bridge.events()) == 1


async def test_restart_repeats_nothing(bridge: Harness) -> None:
    """A new store and poller on the same database file emit nothing already emitted."""
    await bridge.poller.poll_once()
    await bridge.inbound()
    await bridge.poller.poll_once()
    await bridge.restart()
    await bridge.poller.poll_once()
    await bridge.inbound(body="after restart")
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["hello", "after restart"]


async def test_message_stored_late_behind_the_newest_is_picked_up(bridge: Harness) -> None:
    """An SMS whose `created` is behind the newest one seen, but within poll.overlap, is not missed."""
    await bridge.poller.poll_once()
    await bridge.inbound(body="newest")
    await bridge.poller.poll_once()
    await bridge.inbound(body="late", created_ago=TEST_POLL.overlap - 15)
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["newest", "late"]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata"])
async def test_no_message_is_lost_in_the_account_zone(make_harness: MakeHarness, zone: str) -> None:
    """In an account zone behind, ahead of or half an hour off UTC, every new SMS (late ones too) is emitted."""
    bridge = await make_harness(timezone=zone)
    await bridge.poller.poll_once()
    bodies = []
    for step in range(3):
        bridge.advance(30)
        await bridge.inbound(body=f"now {step}")
        await bridge.inbound(body=f"late {step}", created_ago=40)
        bodies += [f"now {step}", f"late {step}"]
        await bridge.poller.poll_once()
    events = await bridge.events()
    assert sorted(e["sms"]["body"] for e in events) == sorted(bodies)
    created = datetime.fromisoformat(events[0]["sms"]["created_at"])
    assert created.utcoffset() == ZoneInfo(zone).utcoffset(created.replace(tzinfo=None))


async def test_first_start_on_a_busy_account_emits_no_history(bridge: Harness) -> None:
    """Messages that existed before the very first poll are recorded as seen, without events."""
    await bridge.simulator.post("bulk_history", {"count": 2000, "days": 2, "end_ago": 1})
    await bridge.inbound(body="just before the start", created_ago=5)
    first = await bridge.poller.poll_once()
    assert first.ok and first.fetched > 0 and first.events == 0
    await bridge.inbound(body="after the start")
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["after the start"]


async def test_an_sms_after_the_start_is_news_even_when_the_first_poll_failed(bridge: Harness) -> None:
    """An SMS that arrives after the bridge started, while its first poll fails, still gives one event."""
    await bridge.poller.mark_start()
    bridge.advance(30)
    await bridge.simulator.post("faults", {"count": 1, "mode": "500", "methods": ["getallsms"]})
    await bridge.inbound(body="while the upstream failed")
    assert not (await bridge.poller.poll_once()).ok
    bridge.advance(30)
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["while the upstream failed"]


async def test_an_sms_in_the_same_second_as_the_start_is_news(bridge: Harness) -> None:
    """The upstream's dates have whole seconds: an SMS of the start's own second, just after it, gives an event."""
    bridge.advance(math.ceil(bridge.clock()) - bridge.clock() + 0.9)
    await bridge.poller.mark_start()
    bridge.advance(0.05)
    await bridge.inbound(body="right after the start")
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["right after the start"]


async def test_backfill_emits_only_the_configured_stretch_of_history(make_harness: MakeHarness) -> None:
    """With poll.backfill, the first poll emits the messages of that stretch and nothing older."""
    bridge = await make_harness(poll=replace(TEST_POLL, backfill=600))
    await bridge.inbound(body="older", created_ago=900)
    await bridge.inbound(body="recent", created_ago=300)
    await bridge.poller.poll_once()
    assert [e["sms"]["body"] for e in await bridge.events()] == ["recent"]


async def test_cursor_does_not_pass_the_newest_message_minus_overlap(bridge: Harness) -> None:
    """The stored cursor is the newest `created` seen minus poll.overlap, so the next window overlaps."""
    await bridge.poller.poll_once()
    bridge.advance(30)
    await bridge.inbound()
    await bridge.poller.poll_once()
    (event,) = await bridge.events()
    created = datetime.fromisoformat(event["sms"]["created_at"]).timestamp()
    assert float(await bridge.store.get_cursor(CURSOR)) == created - TEST_POLL.overlap


async def test_nothing_is_lost_across_the_autumn_clock_change(bridge: Harness) -> None:
    """Through the repeated hour of a DST change (ambiguous local dates both ways), every SMS is emitted once."""
    change = datetime(2027, 10, 31, 1, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # 03:00 CEST -> 02:00 CET
    bridge.advance(change - 5400 - bridge.clock())
    await bridge.poller.poll_once()
    bodies = []
    for step in range(18):  # three hours, every ten minutes
        bridge.advance(600)
        await bridge.inbound(body=f"at {step}")
        bodies.append(f"at {step}")
        await bridge.poller.poll_once()
    assert sorted(e["sms"]["body"] for e in await bridge.events()) == sorted(bodies)


async def test_an_sms_dated_in_the_future_does_not_move_the_cursor_past_now(bridge: Harness) -> None:
    """An SMS from a phone whose clock runs 30 days ahead is an event, and every later SMS still is one."""
    await bridge.poller.poll_once()
    ahead = await bridge.inbound(body="from the future", created_ago=-30 * 86400)
    await bridge.poller.poll_once()
    assert float(await bridge.store.get_cursor(CURSOR) or 0) <= bridge.clock()
    bridge.advance(TEST_POLL.interval)
    later = await bridge.inbound(body="now")
    await bridge.poller.poll_once()
    assert [e["sms"]["id"] for e in await bridge.events()] == [ahead, later]


async def test_half_a_surrogate_pair_in_a_body_does_not_stop_polling(bridge: Harness) -> None:
    """An SMS whose body holds half a surrogate pair arrives with U+FFFD, and the SMS after it arrives too."""
    await bridge.poller.poll_once()
    odd = await bridge.inbound(sender="+4917600000002", body="half emoji \ud83d")
    await bridge.poller.poll_once()
    bridge.advance(TEST_POLL.interval)
    normal = await bridge.inbound(body="normal")
    assert (await bridge.poller.poll_once()).ok
    events = await bridge.events()
    assert [(e["sms"]["id"], e["sms"]["body"]) for e in events] == [(odd, "half emoji \ufffd"), (normal, "normal")]


async def test_a_cursor_stored_in_the_future_is_read_back_from_the_lookback(bridge: Harness) -> None:
    """A cursor an older bridge left in the future (after an SMS dated ahead) is read as now minus poll.lookback,
    so SMS that arrived meanwhile are news again."""
    await bridge.poller.poll_once()
    missed = await bridge.inbound(body="arrived while blind")
    async with bridge.store.transaction() as db:
        await db.set_cursor(CURSOR, repr(bridge.clock() + 30 * 86400))
    bridge.advance(TEST_POLL.interval)
    await bridge.poller.poll_once()
    assert [e["sms"]["id"] for e in await bridge.events()] == [missed]
    assert float(await bridge.store.get_cursor(CURSOR) or 0) <= bridge.clock()
