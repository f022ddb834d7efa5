"""Upstream failures: backoff, one log line per outage, health, and nothing lost after recovery."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from poller_support import PASSWORD, TEST_POLL, FakeUpstream, Harness, MakeHarness
from prometheus_client import generate_latest

from bridge.poller import CURSOR

FAULTS = [{"mode": "500"}, {"mode": "hang", "hang_seconds": 5}, {"mode": "malformed"}, {"mode": "html"},
          {"mode": "empty"}]


async def _fail_next(bridge: Harness, *faults: dict) -> None:
    for fault in faults:
        await bridge.simulator.post("faults", {"count": 1, "methods": ["getallsms"], **fault})


async def test_nothing_is_lost_across_an_outage(make_harness: MakeHarness) -> None:
    """SMS that arrive while getallsms fails (500, timeout, malformed JSON) are all emitted after recovery."""
    bridge = await make_harness(timeout=0.2)
    await bridge.poller.poll_once()
    await _fail_next(bridge, *FAULTS)
    for index in range(len(FAULTS)):
        await bridge.inbound(body=f"during {index}")
        result = await bridge.poller.poll_once()
        assert not result.ok
        bridge.advance(TEST_POLL.interval)
    assert (await bridge.poller.poll_once()).events == len(FAULTS)
    assert [e["sms"]["body"] for e in await bridge.events()] == [f"during {i}" for i in range(len(FAULTS))]


async def test_an_outage_is_logged_once_and_its_end_once(bridge: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Many failed polls in a row log one warning, and the first success after them one info line."""
    await _fail_next(bridge, *[{"mode": "500"}] * 4)
    with caplog.at_level(logging.INFO, logger="bridge.poller"):
        for _ in range(4):
            await bridge.poller.poll_once()
            await bridge.poller.check_devices()
            bridge.advance(TEST_POLL.interval)
        await bridge.poller.poll_once()
    records = [r for r in caplog.records if r.name == "bridge.poller"]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert PASSWORD not in caplog.text


async def test_the_cursor_stays_put_while_polls_fail(bridge: Harness) -> None:
    """A failed poll leaves the cursor where the last successful one put it."""
    await bridge.poller.poll_once()
    cursor = await bridge.store.get_cursor(CURSOR)
    await _fail_next(bridge, {"mode": "503"})
    bridge.advance(120)
    await bridge.poller.poll_once()
    assert await bridge.store.get_cursor(CURSOR) == cursor


async def test_scheduled_polls_are_skipped_while_backing_off(bridge: Harness) -> None:
    """After failures the scheduled poll does not call the upstream until the backoff delay has passed."""
    await bridge.poller.run_scheduled_poll()
    await _fail_next(bridge, *[{"mode": "500"}] * 3)
    delays = []
    for _ in range(3):
        await bridge.poller.run_scheduled_poll()
        calls, waited = await bridge.simulator.calls("getallsms"), 0
        while True:
            bridge.advance(TEST_POLL.interval)
            waited += TEST_POLL.interval
            await bridge.poller.run_scheduled_poll()
            if await bridge.simulator.calls("getallsms") > calls:
                break
        delays.append(waited)
    assert delays == [10, 20, 40]


async def test_health_degrades_after_unhealthy_after(bridge: Harness) -> None:
    """Health turns degraded once polls have failed for poll.unhealthy_after, and recovers on success."""
    await bridge.poller.poll_once()
    await _fail_next(bridge, *[{"mode": "500"}] * 10)
    await bridge.poller.poll_once()
    assert not bridge.poller.health().degraded
    bridge.advance(TEST_POLL.unhealthy_after)
    await bridge.poller.poll_once()
    health = bridge.poller.health()
    assert health.degraded and health.failing_since is not None and "HTTP 500" in (health.last_error or "")
    await _clear(bridge)
    await bridge.poller.poll_once()
    health = bridge.poller.health()
    assert (health.degraded, health.failing_since, health.last_error) == (False, None, None)
    assert health.last_success_ts == pytest.approx(bridge.clock(), abs=5)


async def test_refused_credentials_are_an_outage_without_secrets(bridge: Harness,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A refused login backs off like any outage, and neither logs nor health show the password."""
    await bridge.simulator.post("faults", {"count": 2, "mode": "auth", "methods": ["gettoken"]})
    with caplog.at_level(logging.INFO, logger="bridge.poller"):
        assert not (await bridge.poller.poll_once()).ok
    health = bridge.poller.health()
    assert health.last_error is not None and "credentials" in health.last_error
    assert PASSWORD not in caplog.text and PASSWORD not in repr(health)


async def test_a_failed_transaction_records_nothing_and_the_next_poll_everything(bridge: Harness) -> None:
    """When the write of a batch fails, no message, event or cursor change is kept, and the next poll emits it once."""
    await bridge.poller.poll_once()
    cursor = await bridge.store.get_cursor(CURSOR)
    sms_id = await bridge.inbound()
    async with bridge.store.transaction() as db:
        await db.execute("CREATE TEMP TRIGGER crash BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'crash'); END")
    assert not (await bridge.poller.poll_once()).ok
    assert await bridge.store.fetch_one("SELECT id FROM messages WHERE id = ?", (sms_id,)) is None
    assert await bridge.store.get_cursor(CURSOR) == cursor
    async with bridge.store.transaction() as db:
        await db.execute("DROP TRIGGER crash")
    await bridge.poller.poll_once()
    assert [e["sms"]["id"] for e in await bridge.events()] == [sms_id]


async def _clear(bridge: Harness) -> None:
    async with bridge.simulator.session.delete(f"{bridge.simulator.url}/simulator/faults") as response:
        assert response.status == 200


async def test_refused_credentials_degrade_health_at_once(bridge: Harness) -> None:
    """Credentials the upstream refuses do not fix themselves: health is degraded after the first such poll."""
    await bridge.poller.poll_once()
    await bridge.simulator.post("faults", {"count": 10, "mode": "auth"})
    await bridge.simulator.post("revoke_token", {})
    await bridge.poller.poll_once()
    health = bridge.poller.health()
    assert health.degraded and health.failing_since is not None
    await _clear(bridge)
    await bridge.poller.poll_once()
    assert not bridge.poller.health().degraded


async def test_an_unexpected_failure_of_a_poll_is_an_outage(bridge: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that fails with an error nobody expected is reported by health like any outage, and logged once."""
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise")

    await bridge.poller.poll_once()
    monkeypatch.setattr(bridge.poller.pipeline, "record", broken)
    await bridge.inbound()
    result = await bridge.poller.poll_once()
    health = bridge.poller.health()
    assert not result.ok and health.failing_since is not None and "KeyError" in (health.last_error or "")
    bridge.advance(TEST_POLL.unhealthy_after)
    await bridge.poller.poll_once()
    assert bridge.poller.health().degraded


async def test_a_row_without_a_usable_id_is_logged_once_counted_and_skipped(
        make_harness: MakeHarness, caplog: pytest.LogCaptureFixture) -> None:
    """A getallsms row whose id is past 64 bits is skipped with one warning and one count, however often it
    comes back, while the good row beside it is an event."""
    upstream = FakeUpstream()
    bridge = await make_harness(upstream=upstream)
    await bridge.poller.poll_once()
    created = datetime.fromtimestamp(bridge.clock(), ZoneInfo("Europe/Paris")).strftime("%Y-%m-%d %H:%M:%S")
    upstream.answer_rows([{"id": 2**70, "status": 5, "sendto": "+4917642111111", "body": "odd", "created": created},
                          {"id": 77, "status": 5, "sendto": "+4917642111111", "body": "good", "created": created}])
    with caplog.at_level(logging.WARNING, logger="bridge.poller"):
        for _ in range(3):
            assert (await bridge.poller.poll_once()).ok
            bridge.advance(TEST_POLL.interval)
    assert [e["sms"]["id"] for e in await bridge.events()] == [77]
    assert len([r for r in caplog.records if "cannot read" in r.getMessage()]) == 1
    scrape = generate_latest(bridge.metrics.registry).decode()
    assert 'bridge_upstream_unreadable_rows_total{method="getallsms"} 1.0' in scrape
