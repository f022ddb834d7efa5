"""Opt-outs hold however the number is spelled, from the inbound STOP (push or poll) to the API's send."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import phonenumbers
from api_support import Bridge, start_bridge, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from number_spellings import phone_numbers, send_spellings, spellings
from simulator_control import SimulatorControl, running_simulator

from bridge.store.migrations import MIGRATIONS, RENUMBERED_AT, statements

SECRET = "push-secret-123"


async def _stop_then_send(directory: Path, stop_from: str, via: str, send_to: str) -> tuple[dict[str, Any], list]:
    """STOP from `stop_from` by push or poll, then a send to `send_to`: the message and what went upstream."""
    async with aiohttp.ClientSession() as session, running_simulator(session, pace=1.0, seed=7) as sim:
        bridge = await start_bridge(write_config(directory, sim.url, gateway=f"webhook_secret: {SECRET}"),
                                    start_sender=False)
        try:
            await bridge.poller.mark_start()
            if via == "push":
                now = datetime.now(ZoneInfo(bridge.config.gateway.timezone)).strftime("%Y-%m-%d %H:%M:%S")
                pushed = await bridge.client.post(f"/v1/gateway/{SECRET}", json={
                    "address": stop_from, "body": "STOP", "sms_id": 990001, "date": now, "device_id": 1576})
                assert pushed.status == 200, await pushed.text()
            else:
                sim.state.add_inbound(stop_from, "STOP")
                assert (await bridge.poller.poll_once()).ok
            response = await bridge.send({"to": send_to, "body": "promo"})
            assert response.status == 202, await response.text()
            await bridge.sender.drain_once()
            return await bridge.message((await response.json())["id"]), await sim.sent()
        finally:
            await bridge.close()


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), via=st.sampled_from(["push", "poll"]))
def test_stop_in_any_spelling_refuses_a_send_in_any_spelling(data: st.DataObject, via: str) -> None:
    """A STOP from +49…, 0049…, 015… or 49… (push or poll) makes a later API send to the number, written
    as E.164, 00… or national, refused as opted_out, and nothing goes upstream."""
    number = data.draw(phone_numbers())
    stop_from, send_to = data.draw(spellings(number)), data.draw(send_spellings(number))
    with tempfile.TemporaryDirectory() as directory:
        message, sent = asyncio.run(_stop_then_send(Path(directory), stop_from, via, send_to))
    full = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert [(r["to"], r["state"], r["reason"]) for r in message["recipients"]] == [(full, "refused", "opted_out")]
    assert sent == []


async def _older_database(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """A database as the bridge before schema version 7 left it: numbers stored as they were spelled."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, script in enumerate(MIGRATIONS[:RENUMBERED_AT - 1], start=1):
            for statement in statements(script):
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        for table, values in rows.items():
            marks = ", ".join("?" * len(values[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    finally:
        db.close()


async def test_numbers_an_older_bridge_stored_as_spelled_are_migrated(
        tmp_path: Path, sim: SimulatorControl, bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """Opt-outs stored as 015…, 0049… and 49… by an older bridge refuse sends to the E.164 numbers after the
    upgrade; the loop guard's log and the reply cooldowns are keyed by the E.164 number too."""
    config = write_config(tmp_path, sim.url)
    now = time.time()
    await _older_database(config.storage.path, {
        "opt_outs": [("015752982212", "keyword", now), ("004915752982213", "keyword", now),
                     ("4915752982214", "keyword", now), ("DHL", "keyword", now)],
        "cooldowns": [("info", "004917642111111", now)],
        "sent_log": [("015752982215", "0" * 32, now)],
    })
    bridge = await bridges(config, start_sender=False)
    targets = ["+4915752982212", "+4915752982213", "+4915752982214"]
    response = await bridge.send({"to": targets, "body": "promo"})
    await bridge.sender.drain_once()
    message = await bridge.message((await response.json())["id"])
    assert [(r["state"], r["reason"]) for r in message["recipients"]] == [("refused", "opted_out")] * 3
    assert await sim.sent() == []
    sender_ids = await bridge.store.fetch_all("SELECT number FROM opt_outs WHERE number NOT LIKE '+%'")
    assert [r[0] for r in sender_ids] == ["dhl"]
    assert [tuple(r) for r in await bridge.store.fetch_all("SELECT rule, number FROM cooldowns")] == \
        [("info", "+4917642111111")]
    assert [r[0] for r in await bridge.store.fetch_all("SELECT number FROM sent_log")] == ["+4915752982215"]
