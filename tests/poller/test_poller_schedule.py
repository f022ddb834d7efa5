"""Scheduling: the poller's jobs on APScheduler, and events flowing when the scheduler runs them."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from poller_support import TEST_POLL, Harness, MakeHarness
from waiting import eventually

from bridge.poller import CURSOR


async def test_schedule_adds_a_poll_job_and_a_device_job(bridge: Harness) -> None:
    """schedule() adds the poll (every poll.interval) and the device check (poll.devices_interval), one at a time."""
    scheduler = AsyncIOScheduler()
    bridge.poller.schedule(scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"bridge-poll", "bridge-devices"}
    assert jobs["bridge-poll"].trigger.interval.total_seconds() == TEST_POLL.interval
    assert jobs["bridge-devices"].trigger.interval.total_seconds() == TEST_POLL.devices_interval
    for job in jobs.values():
        assert (job.max_instances, job.coalesce) == (1, True)
        assert job.misfire_grace_time >= 1


async def test_running_scheduler_turns_new_sms_into_events(make_harness: MakeHarness) -> None:
    """With the scheduler running on a short interval, a new SMS becomes an event without any direct call."""
    bridge = await make_harness(poll=replace(TEST_POLL, interval=0.05, devices_interval=0.05))
    scheduler = AsyncIOScheduler()
    bridge.poller.schedule(scheduler)
    scheduler.start()
    try:
        await eventually(lambda: _has_cursor(bridge), what="the first scheduled poll to set the cursor")
        await bridge.inbound(body="scheduled")
        await eventually(lambda: _has_events(bridge), what="an event from a scheduled poll")
    finally:
        scheduler.shutdown(wait=False)
    assert [e["sms"]["body"] for e in await bridge.events()] == ["scheduled"]


async def _has_cursor(bridge: Harness) -> bool:
    return await bridge.store.get_cursor(CURSOR) is not None


async def _has_events(bridge: Harness) -> bool:
    return bool(await bridge.events())


async def test_stopping_mid_poll_ends_quietly_and_records_nothing(make_harness: MakeHarness,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A poll cut short by the stop logs no error and keeps the cursor where it was."""
    caplog.set_level(logging.INFO, logger="bridge.poller")
    bridge = await make_harness(poll=replace(TEST_POLL, interval=0.05, devices_interval=60))
    await bridge.poller.check_devices()
    await bridge.simulator.post("faults", {"count": 1, "mode": "hang", "hang_seconds": 30, "methods": ["getallsms"]})
    scheduler = AsyncIOScheduler()
    bridge.poller.schedule(scheduler)
    scheduler.start()
    await eventually(lambda: _asked(bridge), what="a scheduled poll to call getallsms")
    scheduler.pause()
    await bridge.poller.stop(grace=0.05)
    scheduler.shutdown(wait=False)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "poll: stopped before it finished" in caplog.text
    assert await bridge.store.get_cursor(CURSOR) is None


async def _asked(bridge: Harness) -> bool:
    return await bridge.simulator.calls("getallsms") > 0
