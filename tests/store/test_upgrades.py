"""Schema upgrades over rows an older bridge stored, and the text search they index, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_rows import NOW, a_message

from bridge.store import DeviceRecord, SqliteStore, Store
from bridge.store.dashboard import DashboardReads, MessageFilter
from bridge.store.migrations import (
    DEVICES_FOLLOWED_AT,
    DEVICES_NAMED_AT,
    EVENTS_LINKED_AT,
    POOLED_AT,
    REPLICAS_AT,
    TEXT_INDEXED_AT,
    UNLEARNED_BY_CUSTOMERID_AT,
)

BOTH_ENGINES = True  # every test runs on SQLite, then on PostgreSQL
Opener = Callable[[], Awaitable[Store]]


async def _back_to(store: Store, version: int) -> None:
    """Make the database look as a bridge at schema `version` left it (the later upgrades not run)."""
    async with store.transaction() as tx:
        if version < UNLEARNED_BY_CUSTOMERID_AT:
            for index in ("recipients_unlearned_correlation", "sends_customer"):
                await tx.execute(f"DROP INDEX {index}")
        if version < DEVICES_FOLLOWED_AT:
            await tx.execute("ALTER TABLE devices DROP COLUMN moved_to")
        if version < DEVICES_NAMED_AT:
            for column in ("imei", "serial", "sms_delay"):
                await tx.execute(f"ALTER TABLE devices DROP COLUMN {column}")
        if version < REPLICAS_AT:
            await tx.execute("DROP TABLE leases")
            for table in ("recipients", "outbox", "idempotency"):
                await tx.execute(f"ALTER TABLE {table} DROP COLUMN claimed_by")
        if version < POOLED_AT:
            for table in ("recipient_attempts", "pool_daily", "pool_monthly", "pool_assignments"):
                await tx.execute(f"DROP TABLE {table}")
            for column in ("device_id", "sim", "failovers", "avoid_device", "avoid_sim"):
                await tx.execute(f"ALTER TABLE recipients DROP COLUMN {column}")
        if version < TEXT_INDEXED_AT:
            if isinstance(store, SqliteStore):
                for trigger in ("insert", "delete", "update"):
                    await tx.execute(f"DROP TRIGGER messages_text_{trigger}")
                await tx.execute("DROP TABLE messages_text")
            else:
                await tx.execute("DROP INDEX messages_text")
        await tx.execute("DELETE FROM schema_version WHERE version > ?" if isinstance(store, SqliteStore)
                         else "DELETE FROM schema_version WHERE version > $1", [version])


async def test_events_an_older_bridge_stored_learn_their_sms_on_upgrade(open_store: Opener) -> None:
    """Events recorded before the store kept their SMS id are found by their SMS after the upgrade; an event
    about no SMS, or with a payload that is not JSON, stays without one."""
    store = await open_store()
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(41, body="hello")])
        await tx.insert_events([
            ("evt_a", "k-a", "sms.received", json.dumps({"type": "sms.received", "sms": {"id": 41}}), NOW, None),
            ("evt_b", "k-b", "sms.status", json.dumps({"type": "sms.status", "sms": {"id": 41}}), NOW + 1, None),
            ("evt_c", "k-c", "device.offline", json.dumps({"type": "device.offline", "device": {"id": 1}}), NOW, None),
            ("evt_d", "k-d", "sms.received", "not json", NOW, None),
        ])
    await _back_to(store, EVENTS_LINKED_AT - 1)
    await store.close()
    store = await open_store()
    try:
        assert [e["id"] for e in await DashboardReads(store).events_of_sms(41)] == ["evt_a", "evt_b"]
        unlinked = await store.fetch_all("SELECT id FROM events WHERE sms_id IS NULL ORDER BY id")
        assert [row[0] for row in unlinked] == ["evt_c", "evt_d"]
    finally:
        await store.close()


async def test_devices_an_older_bridge_stored_gain_their_imei_serial_and_pacing(open_store: Opener) -> None:
    """A device stored before the store kept IMEI, serial and pacing keeps its row, with them unknown until the
    next device check reports them."""
    store = await open_store()
    await _back_to(store, DEVICES_NAMED_AT - 1)
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO devices (id, title, online, last_seen_ts, numbers, updated_ts) "
                         + ("VALUES (?, ?, ?, ?, ?, ?)" if isinstance(store, SqliteStore)
                            else "VALUES ($1, $2, $3, $4, $5, $6)"), [1576, "Phone", 1, NOW, "[]", NOW])
    await store.close()
    store = await open_store()
    try:
        async with store.transaction() as tx:
            before = dict((await tx.device_rows())[1576])
            await tx.upsert_devices([DeviceRecord(1576, "Phone", True, NOW, imei="35", serial="SN", sms_delay=5)], NOW)
            after = dict((await tx.device_rows())[1576])
    finally:
        await store.close()
    assert (before["title"], before["imei"], before["serial"], before["sms_delay"]) == ("Phone", None, None, None)
    assert (after["imei"], after["serial"], after["sms_delay"]) == ("35", "SN", 5)


async def test_messages_stored_before_the_text_index_are_found_through_it(open_store: Opener) -> None:
    """The upgrade indexes the bodies already stored: a search that must use the index finds them."""
    store = await open_store()
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(1, body="Your parcel is on its way"), a_message(2, body="hello")])
    await _back_to(store, TEXT_INDEXED_AT - 1)
    await store.close()
    store = await open_store()
    try:
        assert await store.text_indexed("parcel", 10) is not None
        page = await DashboardReads(store, scan_rows=1).messages(MessageFilter(text="PARCEL"))
        assert [m["id"] for m in page.rows] == [1] and page.scanned is None
    finally:
        await store.close()


def _fold(text: str) -> str:
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(_TEXT, min_size=1, max_size=6), data=st.data(), scan_rows=st.sampled_from([1, 10_000]))
async def test_text_search_finds_every_body_containing_the_term(store: Store, bodies: list[str],
                                                                 data: st.DataObject, scan_rows: int) -> None:
    """A term of three characters or more finds exactly the bodies holding it (A-Z in either case, any other
    character itself), through the scan or the index alike; a shorter one finds them among the rows scanned."""
    first = int((await store.fetch_one("SELECT coalesce(max(id), 0) FROM messages"))[0]) + 1
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(first + i, created_ts=NOW + first + i, body=body) for i, body in enumerate(bodies)])
    body = data.draw(st.sampled_from(bodies))
    start = data.draw(st.integers(0, len(body)))
    term = data.draw(st.one_of(st.just(body[start:start + data.draw(st.integers(1, 8))]), _TEXT))
    term = data.draw(st.sampled_from([term, term.upper(), term.lower()]))
    if not term.strip():
        return
    stored = await store.fetch_all("SELECT id, body FROM messages ORDER BY created_ts DESC, id DESC")
    page = await DashboardReads(store, scan_rows=scan_rows).messages(MessageFilter(text=term), limit=1000)
    looked_at = stored if page.scanned is None else stored[:page.scanned]
    assert [m["id"] for m in page.rows] == [row[0] for row in looked_at if _fold(term) in _fold(row[1])]
    if len(term) >= 3:
        assert page.scanned is None
