"""`sms-bridge run` killed with SIGKILL at random moments, again and again, while SMS and API sends flow.

The promises checked at the end, once the last bridge has caught up: every incoming SMS gave exactly one
`sms.received` event, which reached the webhook receiver (at least once; exactly once by webhook-id); every
send answered 202 went out, and no SMS went out twice; nothing is left pending in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from ports import free_port
from reliability_support import Traffic, caught_up, check_promises, read_db, traffic_running
from running_bridge import HOOK_PATH, BridgeProcess, write_bridge_config
from simulator_control import SimulatorControl
from webhook_sink import Reply, Sink

SEED = int(os.environ.get("CRASH_SEED", "20261127"))  # another seed explores other kill moments
KILLS = 30
KILL_WHILE_STARTING = 0.15  # share of kills that hit a bridge still starting (opening, migrating, recovering)
FAULT_CHANCE = 0.3          # chance, at each restart, of one upstream fault and one failing webhook answer
FAULTS = ("500", "500_applied", "503", "malformed", "empty")
FAULTY_METHODS = ("getallsms", "addsms", "addalotofsms", "gettoken")
pytestmark = pytest.mark.slow


def received_events(db: Path) -> dict[int, list[str]]:
    """The ids of the sms.received events recorded for each incoming SMS id."""
    events: dict[int, list[str]] = {}
    for event_id, payload in read_db(db, "SELECT id, payload FROM events WHERE type = 'sms.received'"):
        events.setdefault(json.loads(payload)["sms"]["id"], []).append(event_id)
    return events


def pending_work(db: Path) -> list[tuple[str, int]]:
    """Recipient and outbox states that still wait for something, with their counts."""
    return read_db(db, "SELECT state, count(*) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
                       "GROUP BY state UNION ALL SELECT 'outbox ' || state, count(*) FROM outbox "
                       "WHERE state = 'pending' GROUP BY state")


async def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(
        sim: SimulatorControl, sink: Sink, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Thirty SIGKILLs of a busy bridge (a few while it starts, with upstream and webhook faults thrown in): every
    event delivered once by id, every 202 sent exactly once, nothing left pending."""
    rng = random.Random(SEED)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "bridge.db"
    log_path = tmp_path / "bridge.log"
    config = write_bridge_config(tmp_path, sim.url, port=port, overlap="5s", sink_url=sink.url)
    with log_path.open("ab") as log:
        bridge = BridgeProcess(config, url, log)
        try:
            await bridge.start(session)
            traffic = Traffic(sim, session, url, rng)
            async with traffic_running(traffic):
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.0, 0.6))  # the random moment of the kill
                    await bridge.kill()
                    if rng.random() < KILL_WHILE_STARTING:
                        await bridge.spawn()
                        await asyncio.sleep(rng.uniform(0.0, 0.5))  # a random moment of the start-up
                        await bridge.kill()
                    if rng.random() < FAULT_CHANCE:
                        await sim.fault(rng.choice(FAULTS), methods=[rng.choice(FAULTY_METHODS)])
                        sink.answer(HOOK_PATH, Reply(rng.choice((500, 503, 429))))
                    await bridge.start(session)
            await settled(traffic, sink, db, log_path)
        finally:
            await bridge.stop()
    check_end_state(traffic, sink, db, await sim.sent())


async def settled(traffic: Traffic, sink: Sink, db: Path, log_path: Path) -> None:
    """Wait (bounded) until the last bridge has caught up with everything the traffic caused."""

    async def events() -> dict[int, list[str]]:
        return received_events(db)

    async def pending() -> list[str]:
        return list(map(str, pending_work(db)))

    try:
        await caught_up(traffic, sink, events, pending, timeout=45)
    except AssertionError as exc:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise AssertionError(f"{exc}; bridge log tail:\n" + "\n".join(tail)) from None


def check_end_state(traffic: Traffic, sink: Sink, db: Path, sent: list[dict]) -> None:
    """The promises of every traffic run, no recipient row submitted twice, nothing left undelivered or unsent in
    the database, and enough traffic to prove anything."""
    per_text = check_promises(traffic, sink, received_events(db), sent)
    per_customer = Counter(row["customerid"] for row in sent)
    assert {key: n for key, n in per_customer.items() if n > 1} == {}, "a recipient row was submitted twice"
    assert read_db(db, "SELECT count(*) FROM outbox WHERE state != 'delivered'") == [(0,)]
    assert read_db(db, "SELECT state, count(*) FROM recipients GROUP BY state") == [
        ("submitted", len(per_text))]
    assert len(traffic.accepted) > 30 and len(traffic.inbound) > 100, "too little traffic to prove anything"
