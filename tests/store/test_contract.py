"""The storage contract: what every backend does, the same on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sample_rows import NOW, a_message, a_send

from bridge.store import (
    SCHEMA_VERSION,
    AttemptLog,
    DeviceRecord,
    EventAction,
    NewDelivery,
    NewSend,
    SqliteStore,
    Store,
    StoreError,
)
from bridge.store.dashboard import DashboardReads, MessageFilter
from bridge.store.postgres import PostgresStore
from bridge.store.postgres.backend import WRITE_LOCK

BOTH_ENGINES = True  # every test runs on SQLite, then on PostgreSQL


async def add_event(store: Store, event_id: str, *deliveries: NewDelivery) -> None:
    async with store.transaction() as tx:
        await tx.insert_events([(event_id, f"key-{event_id}", "sms.received", json.dumps({"id": event_id}), NOW, 7)])
        for delivery in deliveries:
            await tx.insert_delivery(delivery, NOW)


# --- transactions, schema ------------------------------------------------------------------------------------


async def test_a_new_store_is_at_the_latest_schema_version(store: Store) -> None:
    """A store opened empty has run every migration of the one history."""
    assert (await store.fetch_one("SELECT max(version) FROM schema_version"))[0] == SCHEMA_VERSION


async def test_a_failing_transaction_changes_nothing(store: Store) -> None:
    """An exception inside a transaction rolls back every statement made in it."""
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.insert_send(a_send("msg_1"), NOW)
            await tx.set_cursor("poll", "1")
            raise RuntimeError("crash")
    assert await store.get_send("msg_1") is None and await store.get_cursor("poll") is None


@asynccontextmanager
async def another_connection(store: Store, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A connection of the test's own to `store`'s database: a `sqlite3` connection or an asyncpg one."""
    if isinstance(store, PostgresStore):
        db = await asyncpg.connect(request.getfixturevalue("postgres_url"))
        try:
            yield db
        finally:
            await db.close()
    else:
        assert isinstance(store, SqliteStore)
        plain = sqlite3.connect(store.path, isolation_level=None)
        try:
            yield plain
        finally:
            plain.close()


@asynccontextmanager
async def another_writer(store: Store, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Another connection holds the lock every write transaction of `store` takes first, for the block."""
    async with another_connection(store, request) as db:
        if isinstance(store, PostgresStore):
            await db.execute("SELECT pg_advisory_lock($1)", WRITE_LOCK)
            yield
            await db.execute("SELECT pg_advisory_unlock($1)", WRITE_LOCK)
        else:
            db.execute("BEGIN EXCLUSIVE")
            yield
            db.execute("ROLLBACK")


async def committed_cursor(store: Store, request: pytest.FixtureRequest, name: str) -> str | None:
    """Cursor `name` as another connection reads it: only what was committed."""
    async with another_connection(store, request) as db:
        if isinstance(store, PostgresStore):
            return await db.fetchval("SELECT value FROM cursors WHERE name = $1", name)
        row = db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None


async def write_cursor(store: Store, name: str, value: str) -> None:
    """Set cursor `name` in a transaction of its own."""
    async with store.transaction() as tx:
        await tx.set_cursor(name, value)


async def test_a_transaction_cancelled_while_it_begins_leaves_none_open(
        store: Store, request: pytest.FixtureRequest) -> None:
    """A transaction cancelled while it waits to begin (another writer holds the lock) leaves none open: the next
    one begins, commits, and another connection sees what it wrote."""
    async with another_writer(store, request):
        attempt = asyncio.create_task(write_cursor(store, "given-up", "never"))
        await asyncio.wait([attempt], timeout=0.3)
        assert not attempt.done(), "a transaction began while another writer held the lock"
        attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    async with asyncio.timeout(10):
        await write_cursor(store, "poll", "after")
    assert await committed_cursor(store, request, "poll") == "after"
    assert await committed_cursor(store, request, "given-up") is None


async def test_a_value_the_database_cannot_hold_is_a_store_error(store: Store) -> None:
    """An id past 64 bits is a StoreError and the transaction writes nothing."""
    with pytest.raises(StoreError):
        async with store.transaction() as tx:
            await tx.insert_send(a_send("msg_kept_back"), NOW)
            await tx.insert_messages([a_message(2**70)])
    assert await store.get_send("msg_kept_back") is None


# --- cursors, messages, events, devices ----------------------------------------------------------------------


async def test_a_cursor_keeps_its_last_value(store: Store) -> None:
    """A cursor reads back the value last set."""
    async with store.transaction() as tx:
        await tx.set_cursor("poll", "1.5")
        await tx.set_cursor("poll", "2.5")
    assert await store.get_cursor("poll") == "2.5"


async def test_a_message_seen_twice_keeps_its_first_row(store: Store) -> None:
    """Inserting a stored id again leaves the stored row as it is."""
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(7, status=5)])
        await tx.insert_messages([a_message(7, status=1)])
        rows = await tx.messages_by_id([7, 8])
    assert list(rows) == [7] and rows[7]["status"] == 5 and rows[7]["body"] == "text 7"


async def test_open_outgoing_lists_unfinished_sent_messages_oldest_first(store: Store) -> None:
    """Outgoing messages not final and recent enough are listed oldest first; final and inbound ones are not."""
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(1, "out", 1, NOW + 2), a_message(2, "out", 1, NOW + 1),
                                  a_message(3, "out", 4, NOW), a_message(4, "in", 1, NOW), a_message(5, "out", 2, 1.0)])
        await tx.update_message_statuses([(1, 3, NOW + 3)])
    rows = await store.open_outgoing(NOW - 60)
    assert [(row["id"], row["status"]) for row in rows] == [(2, 1), (1, 3)]


async def test_the_highest_sms_id_counts_messages_and_sent_recipients(store: Store) -> None:
    """The highest SMS id is the larger of stored messages and recipients' upstream ids."""
    assert await store.highest_sms_id() is None
    async with store.transaction() as tx:
        await tx.insert_messages([a_message(40)])
        await tx.insert_send(a_send("msg_1"), NOW)
        [row] = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitted([(row["id"], 99, NOW)], NOW)
    assert await store.highest_sms_id() == 99


async def test_event_keys_already_stored_are_known(store: Store) -> None:
    """Only dedupe keys of stored events are reported known."""
    await add_event(store, "evt_1")
    async with store.reading() as tx:
        assert await tx.known_event_keys(["key-evt_1", "key-evt_2"]) == {"key-evt_1"}


async def test_devices_are_upserted_and_their_numbers_listed(store: Store) -> None:
    """A device stored again replaces its row; own numbers list every SIM number by device id."""
    async with store.transaction() as tx:
        await tx.upsert_devices([DeviceRecord(2, "B", True, NOW, '["+492"]'),
                                 DeviceRecord(1, "A", False, None, '["+491", ""]')], NOW)
        await tx.upsert_devices([DeviceRecord(2, "B2", False, NOW, '["+493"]')], NOW)
        devices = await tx.device_rows()
    assert (devices[2]["title"], devices[2]["online"]) == ("B2", 0)
    assert await store.own_numbers() == ("+491", "+493")


async def test_a_device_moved_to_a_new_id_is_itself_again_once_listed(store: Store) -> None:
    """A device noted as moved to a new id keeps that until it is listed again under its own id."""
    async with store.transaction() as tx:
        await tx.upsert_devices([DeviceRecord(1, "A", True, NOW), DeviceRecord(5, "A", True, NOW)], NOW)
        await tx.move_devices([(1, 5)], NOW)
        moved = (await tx.device_rows())[1]["moved_to"]
        await tx.upsert_devices([DeviceRecord(1, "A", True, NOW)], NOW)
        devices = await tx.device_rows()
    assert (moved, devices[1]["moved_to"], devices[5]["moved_to"]) == (5, None, None)


async def test_a_device_keeps_its_imei_serial_and_pacing(store: Store) -> None:
    """A device's IMEI, serial number and own delay between SMS are stored and replaced with the device."""
    async with store.transaction() as tx:
        await tx.upsert_devices([DeviceRecord(2, "B", True, NOW, imei="350000000000002", serial="SN2",
                                              sms_delay=5.0)], NOW)
        await tx.upsert_devices([DeviceRecord(3, "C", True, NOW)], NOW)
        first = dict((await tx.device_rows())[2])
        await tx.upsert_devices([DeviceRecord(2, "B", True, NOW, serial="SN2b")], NOW)
        devices = await tx.device_rows()
    assert (first["imei"], first["serial"], first["sms_delay"]) == ("350000000000002", "SN2", 5.0)
    assert (devices[2]["imei"], devices[2]["serial"], devices[2]["sms_delay"]) == (None, "SN2b", None)
    assert (devices[3]["imei"], devices[3]["serial"], devices[3]["sms_delay"]) == (None, None, None)


# --- safety, idempotency -------------------------------------------------------------------------------------


async def test_opting_out_and_in_again(store: Store) -> None:
    """A number opted out is reported until it opts in again."""
    async with store.transaction() as tx:
        await tx.set_opted_out("+491", True, "keyword", NOW)
        await tx.set_opted_out("+491", True, "rule:x", NOW + 1)
        assert await tx.opted_out(["+491", "+492"]) == {"+491"}
        await tx.set_opted_out("+491", False, "keyword", NOW + 2)
        assert await tx.opted_out(["+491"]) == set()


async def test_the_loop_guard_counts_recent_texts_per_number_and_body(store: Store) -> None:
    """Recent sends are counted per (number, body hash) asked for, after the given time only."""
    async with store.transaction() as tx:
        await tx.log_sent([("+491", "h1"), ("+491", "h1"), ("+492", "h2"), ("+492", "h3")], NOW)
        await tx.log_sent([("+491", "h1")], NOW - 100)
        asked = [("+491", "h1"), ("+492", "h2"), ("+493", "h1"), ("+491", "h2")]
        assert await tx.recent_sends(asked, NOW - 10) == {("+491", "h1"): 2, ("+492", "h2"): 1}
        assert await tx.recent_sends([], NOW - 10) == {}


async def test_a_reply_cooldown_is_per_rule_and_number(store: Store) -> None:
    """The last reply time is kept per rule and number, the latest winning."""
    async with store.transaction() as tx:
        await tx.note_reply("info", "+491", NOW)
        await tx.note_reply("info", "+491", NOW + 5)
        assert await tx.last_reply_ts("info", "+491") == NOW + 5
        assert await tx.last_reply_ts("other", "+491") is None


async def test_numbers_stored_as_spelled_are_re_keyed_by_the_upgrade(store: Store) -> None:
    """The schema upgrade's re-keying finds an opt-out stored in national spelling under its E.164 reading."""
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO opt_outs (number, source, created_ts) VALUES ('015752982212', 'keyword', 1.0)")
        await tx.renumber("DE")
        assert await tx.opted_out(["+4915752982212"]) == {"+4915752982212"}


async def test_a_stored_answer_is_given_back_until_it_expires(store: Store) -> None:
    """An idempotency answer is found while fresh and is gone once purged."""
    async with store.transaction() as tx:
        await tx.save_answers([("scope", "k1", "hash", 202, '{"id": "msg_1"}')], NOW)
    answer = await store.get_answer("scope", "k1", NOW - 10)
    assert (answer["request_hash"], answer["status"], answer["response"]) == ("hash", 202, '{"id": "msg_1"}')
    assert await store.get_answer("scope", "k1", NOW + 1) is None
    async with store.transaction() as tx:
        await tx.purge_expired(NOW + 1, NOW + 1)
    assert await store.get_answer("scope", "k1", 0.0) is None


async def test_an_idempotency_key_marked_running_is_not_marked_again(store: Store) -> None:
    """A key runs once at a time: marked, refused while running, free again once released."""
    assert await store.claim_key("scope", "k", NOW, NOW - 86400)
    assert not await store.claim_key("scope", "k", NOW, NOW - 86400)
    assert await store.get_answer("scope", "k", 0.0) is None
    await store.release_key("scope", "k")
    assert await store.claim_key("scope", "k", NOW, NOW - 86400)


# --- sends -----------------------------------------------------------------------------------------------------


async def test_a_queued_send_reads_back_with_its_recipients_in_order(store: Store) -> None:
    """Grouped inserts keep every send and its recipients, in order, queued."""
    async with store.transaction() as tx:
        await tx.insert_sends([a_send("msg_1", "+491", "+492"), a_send("msg_2", "+493")], NOW)
    send, recipients = await store.get_send("msg_1")
    assert (send["id"], send["source"], send["created_ts"]) == ("msg_1", "api", NOW)
    assert [(r["number"], r["state"], r["sms_id"], r["status"]) for r in recipients] == [
        ("+491", "queued", None, None), ("+492", "queued", None, None)]
    assert await store.get_send("msg_3") is None


async def test_recipients_get_random_correlation_ids_in_the_upstream_range(store: Store) -> None:
    """Each recipient carries a correlation id between 1 and 2**31 - 1."""
    async with store.transaction() as tx:
        await tx.insert_sends([a_send(f"msg_{i}", "+491", "+492") for i in range(20)], NOW)
        rows = await tx.due_recipients("queued", NOW, 100)
    ids = [row["correlation_id"] for row in rows]
    assert len(rows) == 40 and all(1 <= i < 2**31 for i in ids) and len(set(ids)) > 30


async def test_due_recipients_walk_the_queue_oldest_first(store: Store) -> None:
    """Queued recipients due now come oldest first with their send's fields, up to the limit."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_late", body="later"), NOW + 5)
        await tx.insert_send(a_send("msg_early", body="first"), NOW)
        rows = await tx.due_recipients("queued", NOW + 10, 1)
        none_yet = await tx.due_recipients("queued", NOW - 1, 10)
    assert [(r["send_id"], r["body"], r["device_id"], r["attempts"]) for r in rows] == [("msg_early", "first", 1576, 0)]
    assert none_yet == []


async def test_a_recipient_goes_from_queued_to_submitted(store: Store) -> None:
    """Submitting counts an attempt; submitting without an id awaits learning it; the queue depths follow."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_1", "+491", "+492"), NOW)
        first, second = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitting([first["id"], second["id"]], NOW)
    assert (await store.send_queue_depths())["submitting"] == 2
    async with store.transaction() as tx:
        await tx.mark_submitted([(first["id"], 501, NOW + 60), (second["id"], None, NOW + 60)], NOW)
        unlearned = await tx.recipients_by_id([first["id"], second["id"]])
        assert await tx.assigned_sms_ids([501, 502]) == {501}
    assert [(r["id"], r["attempts"]) for r in unlearned] == [(second["id"], 1)]
    assert await store.unlearned_recipient_ids(NOW - 1) == [second["id"]]
    assert await store.next_recipient_due() is None


async def test_recipients_still_to_learn_come_with_their_send(store: Store) -> None:
    """The recipients submitted without an id since a time, among the customerids asked for, are listed with
    their send's text, by id."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_1", "+491", "+492", "+493", "+494", body="batch"), NOW)
        rows = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitting([r["id"] for r in rows], NOW)
        await tx.mark_submitted([(rows[0]["id"], 501, NOW)] + [(r["id"], None, NOW) for r in rows[1:]], NOW)
        asked = [r["correlation_id"] for r in rows[:3]]
        unlearned = await tx.unlearned_recipients(NOW - 1, asked)
        assert await tx.unlearned_recipients(NOW + 1, asked) == []
        assert await tx.unlearned_recipients(NOW - 1, []) == []
    assert [(r["id"], r["number"], r["body"]) for r in unlearned] == [
        (rows[1]["id"], "+492", "batch"), (rows[2]["id"], "+493", "batch")]
    assert await store.unlearned_recipient_ids(NOW - 1) == [r["id"] for r in rows[1:]]


async def test_recipients_of_a_send_with_its_own_customerid_are_learned_by_it(store: Store) -> None:
    """Recipients of a send the caller gave a customerid are still to learn under that customerid, not under
    their own correlation ids."""
    async with store.transaction() as tx:
        await tx.insert_sends([replace(a_send("msg_1", "+491", "+492"), customer_id=4242), a_send("msg_2", "+493")],
                              NOW)
        rows = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitting([r["id"] for r in rows], NOW)
        await tx.mark_submitted([(r["id"], None, NOW) for r in rows], NOW)
        by_caller = await tx.unlearned_recipients(NOW - 1, [4242])
        by_own = await tx.unlearned_recipients(NOW - 1, [r["correlation_id"] for r in rows])
    assert [r["number"] for r in by_caller] == ["+491", "+492"]
    assert [r["number"] for r in by_own] == ["+493"]


async def test_recipients_left_submitting_are_put_in_doubt(store: Store) -> None:
    """A recipient a stopped process left submitting is in doubt, due when asked."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_1", "+491", "+492"), NOW)
        first, _ = await tx.due_recipients("queued", NOW, 10)
        await tx.mark_submitting([first["id"]], NOW)
        assert await tx.recover_submitting(NOW + 30, NOW) == 1
        [doubt] = await tx.due_recipients("in_doubt", NOW + 30, 10)
        await tx.set_in_doubt([(doubt["id"], "no answer", NOW + 90, NOW + 600)], NOW)
        [later] = await tx.due_recipients("in_doubt", NOW + 90, 10)
    assert (doubt["id"], later["resend_ts"]) == (first["id"], NOW + 600)
    assert await store.next_recipient_due() == NOW


async def test_set_recipients_records_state_and_reason(store: Store) -> None:
    """A refused recipient keeps its reason and leaves the queue."""
    async with store.transaction() as tx:
        await tx.insert_send(a_send("msg_1"), NOW)
        [row] = await tx.due_recipients("queued", NOW, 10)
        await tx.set_recipients("refused", [(row["id"], "opted_out", NOW)], NOW)
    _, [recipient] = await store.get_send("msg_1")
    assert (recipient["state"], recipient["reason"]) == ("refused", "opted_out")
    assert (await store.send_queue_depths())["queued"] == 0


# --- outbox --------------------------------------------------------------------------------------------------


async def test_due_deliveries_of_a_lane_wait_the_first_delay(store: Store) -> None:
    """A lane's rows are due only after the target's first delay, oldest first, with their event payload."""
    await add_event(store, "evt_1", NewDelivery("evt_1", "webhook", "crm", "r", {"t": 1}),
                    NewDelivery("evt_1", "webhook", "other", "r"))
    assert await store.due_deliveries(NOW, "webhook", "crm", 5.0, 10, ()) == []
    [row] = await store.due_deliveries(NOW + 5, "webhook", "crm", 5.0, 10, ())
    assert (row["event_id"], row["target"], json.loads(row["spec"]), json.loads(row["payload"])) == (
        "evt_1", "crm", {"t": 1}, {"id": "evt_1"})
    assert await store.due_deliveries(NOW + 5, "webhook", "crm", 5.0, 10, [row["id"]]) == []
    assert await store.next_delivery_ts("webhook", "crm", 5.0, ()) == NOW + 5
    assert await store.next_delivery_ts("webhook", "crm", 5.0, [row["id"]]) is None


async def test_many_deliveries_are_queued_in_their_order(store: Store) -> None:
    """Deliveries queued together are due in the order given, each with its own target and spec."""
    await add_event(store, "evt_1")
    async with store.transaction() as tx:
        await tx.insert_deliveries([NewDelivery("evt_1", "webhook", "crm", "r", {"n": n}) for n in range(3)], NOW)
    rows = await store.due_deliveries(NOW, "webhook", "crm", 0.0, 10, ())
    assert [json.loads(row["spec"]) for row in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_a_failed_attempt_is_retried_at_its_time(store: Store) -> None:
    """A recorded failed attempt makes the row due at its next attempt time, with no first delay."""
    await add_event(store, "evt_1", NewDelivery("evt_1", "webhook", "crm", "r"))
    [row] = await store.due_deliveries(NOW + 5, "webhook", "crm", 5.0, 10, ())
    async with store.transaction() as tx:
        await tx.record_attempts([(row["id"], "pending", NOW + 60, "HTTP 500", 500)], NOW + 5)
    assert await store.next_delivery_ts("webhook", "crm", 5.0, ()) == NOW + 60
    [failed] = await store.list_deliveries(failed_only=True)
    assert (failed["attempts"], failed["last_status"], failed["event_type"]) == (1, 500, "sms.received")
    assert [(p["kind"], p["target"], p["count"]) for p in await store.pending_deliveries_by_target()] == [
        ("webhook", "crm", 1)]


async def test_dead_rows_are_replayed_and_their_target_enabled(store: Store) -> None:
    """Replaying re-queues dead rows as never attempted and re-enables their disabled target."""
    await add_event(store, "evt_1", NewDelivery("evt_1", "webhook", "crm", "r"), NewDelivery("evt_1", "tag", "7", "r"))
    rows = await store.list_deliveries()
    async with store.transaction() as tx:
        await tx.record_attempts([(r["id"], "dead", NOW, "HTTP 410", 410) for r in rows], NOW)
        assert await tx.disable_target("crm", "HTTP 410 Gone", NOW) is True
        assert await tx.disable_target("crm", "again", NOW) is False
    assert [(r["name"], r["reason"]) for r in await store.disabled_targets()] == [("crm", "HTTP 410 Gone")]
    requeued, enabled = await store.replay_deliveries(NOW + 1, target="crm")
    assert (requeued, enabled) == ([rows[0]["id"]], ["crm"])
    states = {r["id"]: r["state"] for r in await store.delivery_states([r["id"] for r in rows])}
    assert states == {rows[0]["id"]: "pending", rows[1]["id"]: "dead"}
    assert (await store.replay_deliveries(NOW + 2))[0] == [rows[1]["id"]]
    assert await store.disabled_targets() == []


async def test_attempts_and_event_actions_are_kept_for_the_dashboard(store: Store) -> None:
    """Every attempt and what the rules did with an event are kept and read back by the dashboard's queries."""
    await add_event(store, "evt_1", NewDelivery("evt_1", "webhook", "crm", "r"))
    [row] = await store.list_deliveries()
    async with store.transaction() as tx:
        await tx.insert_event_actions([EventAction("evt_1", 0, "r", "webhook", "crm", "queued")])
        await tx.log_attempts([AttemptLog(row["id"], "retry", 500, 12.5, "HTTP 500", "oops")], NOW)
        await tx.insert_messages([a_message(7)])
    reads = DashboardReads(store)
    assert [(a["rule"], a["outcome"]) for a in await reads.actions_of(["evt_1"])] == [("r", "queued")]
    assert [(a["outcome"], a["status"]) for a in await reads.attempts_of([row["id"]])] == [("retry", 500)]
    assert [e["id"] for e in await reads.events_of_sms(7)] == ["evt_1"]
    page = await reads.messages(MessageFilter(text="TEXT 7"))
    assert [m["id"] for m in page.rows] == [7]


# --- hostile input -------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
       number=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
@example(body="Hel\x00lo", number="+4915752982212\x00")
async def test_any_text_is_kept_whole(store: Store, body: str, number: str) -> None:
    """Any body and number is stored and read back exactly, never refused; only PostgreSQL, whose text cannot
    hold U+0000, keeps a NUL as U+FFFD."""
    send_id = f"msg_{uuid.uuid4().hex}"
    async with store.transaction() as tx:
        await tx.insert_sends([NewSend(send_id, "api", (number,), body, None, None)], NOW)
    async with store.reading() as tx:
        [row] = [r for r in await tx.due_recipients("queued", NOW, 10_000) if r["send_id"] == send_id]
    assert (row["body"], row["number"]) == (kept(store, body), kept(store, number))


async def test_a_nul_in_an_inbound_body_is_stored(store: Store) -> None:
    """An inbound SMS whose body holds a NUL is stored with the rest of its batch, never failing the batch."""
    async with store.transaction() as tx:
        await tx.insert_messages([(*a_message(8)[:3], "Hel\x00lo", *a_message(8)[4:]), a_message(9)])
    async with store.reading() as tx:
        rows = await tx.messages_by_id([8, 9])
    assert rows[8]["body"] == kept(store, "Hel\x00lo") and rows[9]["body"] == "text 9"


def kept(store: Store, text: str) -> str:
    """`text` as `store` keeps it: whole, or with U+FFFD for each NUL on an engine whose text cannot hold one."""
    return text.replace("\x00", "\ufffd") if isinstance(store, PostgresStore) else text