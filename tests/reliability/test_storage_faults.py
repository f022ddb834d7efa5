"""The store under a locked database, a full disk, corrupt files and schemas of other versions."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from reliability_support import database_locked, read_db, run_python
from running_bridge import RunningBridge, run_to_exit, running_bridge, simulated_config, spawn_run
from sample_rows import a_send
from simulator_control import SimulatorControl
from waiting import eventually

from bridge.appkeys import POLLER, STORE
from bridge.store import (
    MIGRATIONS,
    NewSend,
    SCHEMA_VERSION,
    SchemaTooNew,
    SqliteStore,
    Store,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
)

BUSY_MS = 200  # a short busy_timeout: a locked database is reported in a fraction of a second


async def queue(store: Store, *sends: NewSend, now: float = 1_000.0) -> None:
    """Queue `sends` in one transaction."""
    async with store.transaction() as db:
        for send in sends:
            await db.insert_send(send, now)


async def send_ids(store: Store) -> list[str]:
    """The ids of every queued send."""
    return [row[0] for row in await store.fetch_all("SELECT id FROM sends ORDER BY id")]


@pytest.fixture
async def store(tmp_path: Path):
    """A fresh store with a short busy timeout."""
    opened = await SqliteStore.open(tmp_path / "bridge.db", busy_timeout_ms=BUSY_MS)
    yield opened
    await opened.close()


# --- locked by another process ---------------------------------------------------------------------


async def test_a_write_to_a_database_another_process_locks_raises_store_unavailable(store: Store) -> None:
    """While another process holds the write lock, a transaction fails with StoreUnavailable after busy_timeout."""
    with database_locked(store.path):
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            await queue(store, a_send("msg_locked"))
        assert time.monotonic() - began < 5


async def test_a_write_refused_by_the_lock_leaves_nothing_behind(store: Store) -> None:
    """A send refused because of the lock has neither its row nor its recipients stored."""
    with database_locked(store.path), pytest.raises(StoreUnavailable):
        await queue(store, a_send("msg_locked"))
    assert read_db(store.path, "SELECT count(*) FROM sends")[0][0] == 0
    assert read_db(store.path, "SELECT count(*) FROM recipients")[0][0] == 0


async def test_writes_succeed_once_the_lock_is_released(store: Store) -> None:
    """The same store writes normally once the other process lets the lock go."""
    with database_locked(store.path), pytest.raises(StoreUnavailable):
        await queue(store, a_send("msg_1"))
    await queue(store, a_send("msg_1"))
    assert await send_ids(store) == ["msg_1"]
    assert read_db(store.path, "SELECT count(*) FROM recipients")[0][0] == 1


async def test_reads_go_on_while_another_process_holds_the_write_lock(store: Store) -> None:
    """WAL mode: reads are not blocked by another process's write lock."""
    await queue(store, a_send("msg_1"))
    with database_locked(store.path):
        assert await send_ids(store) == ["msg_1"]


async def test_opening_a_database_another_process_locks_raises_store_unavailable(tmp_path: Path) -> None:
    """Opening (which migrates) a database another process holds locked fails with StoreUnavailable."""
    path = tmp_path / "bridge.db"
    await (await SqliteStore.open(path)).close()
    with database_locked(path), pytest.raises(StoreUnavailable):
        await SqliteStore.open(path, busy_timeout_ms=BUSY_MS)


# --- a full disk ------------------------------------------------------------------------------------

# A child process (the limit applies to it alone) commits one send, then tries to write 2 MB in one transaction
# with files capped just above their current size, then lifts the cap and writes again.
_FILL_DISK = """
    import asyncio, json, resource, signal, sys
    from pathlib import Path
    from bridge.store import NewSend, SqliteStore, Store, StoreError

    path = Path(sys.argv[1])

    def send(send_id, body):
        return NewSend(send_id, "api", ("+4915752982212",), body, 1576, 0)

    async def main():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        store = await SqliteStore.open(path)
        async with store.transaction() as db:
            await db.insert_send(send("msg_kept", "committed before the disk filled"), 1.0)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        largest = max(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 32_768, hard))
        error = None
        try:
            async with store.transaction() as db:
                for i in range(200):
                    await db.insert_send(send(f"msg_big{i:03d}", "x" * 10_000), 2.0)
        except StoreError as exc:
            error = {"type": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            error = {"type": "not a StoreError: " + type(exc).__name__, "message": str(exc)}
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        try:
            async with store.transaction() as db:
                await db.insert_send(send("msg_after", "written once there was room again"), 3.0)
            recovered = "yes"
        except Exception as exc:
            recovered = f"{type(exc).__name__}: {exc}"
        await store.close()
        print(json.dumps({"error": error, "recovered": recovered}))

    asyncio.run(main())
"""


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The database file and what the child process reported after running out of file size once."""
    path = tmp_path_factory.mktemp("full") / "bridge.db"
    return path, run_python(_FILL_DISK, str(path))


def test_a_write_that_does_not_fit_raises_a_store_error_naming_the_file(full_disk: tuple[Path, dict]) -> None:
    """Running out of space mid-transaction raises StoreUnavailable with the database's path in the message."""
    path, report = full_disk
    assert report["error"] is not None, "the oversized transaction was committed despite the size limit"
    assert report["error"]["type"] == "StoreUnavailable", report["error"]
    assert str(path) in report["error"]["message"]


def test_a_full_disk_keeps_committed_data_and_writes_nothing_half(full_disk: tuple[Path, dict]) -> None:
    """After the failed write the file is intact: the earlier send is there and none of the failed one's rows."""
    path, _ = full_disk
    assert read_db(path, "PRAGMA integrity_check") == [("ok",)]
    ids = [row[0] for row in read_db(path, "SELECT id FROM sends ORDER BY id")]
    assert "msg_kept" in ids
    assert not [i for i in ids if i.startswith("msg_big")]
    assert read_db(path, "SELECT count(*) FROM recipients WHERE send_id LIKE 'msg_big%'") == [(0,)]


def test_the_store_writes_again_once_there_is_room(full_disk: tuple[Path, dict]) -> None:
    """The same connection commits again once the disk has room, without reopening."""
    path, report = full_disk
    assert report["recovered"] == "yes"
    assert read_db(path, "SELECT count(*) FROM sends WHERE id = 'msg_after'") == [(1,)]


# --- corrupt files ------------------------------------------------------------------------------------


async def valid_database(path: Path) -> bytes:
    """Create a database with some messages, closed and checkpointed; returns its bytes."""
    store = await SqliteStore.open(path)
    async with store.transaction() as db:
        await db.insert_messages([(i, "in", "+4915752982212", "x" * 500, 1576, 0, 5, None,
                                          "2026-11-24T10:00:00+01:00", 1.0e9 + i, 1.0e9, None) for i in range(1, 300)])
    await store.close()
    return path.read_bytes()


async def assert_refused_as_corrupt_and_unchanged(path: Path, data: bytes) -> None:
    """With `data` as the database file, opening raises StoreCorrupt naming the file, saying it is not usable
    and that the bridge will not reset it; the file's bytes are not touched."""
    path.write_bytes(data)
    with pytest.raises(StoreCorrupt) as excinfo:
        await SqliteStore.open(path)
    message = str(excinfo.value)
    assert str(path) in message and "not a usable SQLite database" in message and "will not reset" in message
    assert path.read_bytes() == data


async def test_a_file_of_random_bytes_is_refused_as_corrupt_and_left_unchanged(tmp_path: Path) -> None:
    """A file of random bytes raises StoreCorrupt and its bytes are not touched."""
    await assert_refused_as_corrupt_and_unchanged(tmp_path / "bridge.db", random.Random(1).randbytes(8192))


async def test_a_truncated_header_is_refused_as_corrupt_and_left_unchanged(tmp_path: Path) -> None:
    """A database cut inside its 100-byte header raises StoreCorrupt and its bytes are not touched."""
    path = tmp_path / "bridge.db"
    await assert_refused_as_corrupt_and_unchanged(path, (await valid_database(path))[:50])


async def test_a_garbage_schema_page_is_refused_as_corrupt_and_left_unchanged(tmp_path: Path) -> None:
    """A database whose second page is garbage raises StoreCorrupt and its bytes are not touched."""
    path = tmp_path / "bridge.db"
    good = await valid_database(path)
    page = 4096
    broken = good[:page] + random.Random(2).randbytes(page) + good[2 * page:]
    await assert_refused_as_corrupt_and_unchanged(path, broken)


async def test_a_corrupt_table_page_found_after_start_raises_store_corrupt(tmp_path: Path) -> None:
    """Corruption that opening cannot see (a data page) surfaces as StoreCorrupt on the write that meets it."""
    path = tmp_path / "bridge.db"
    good = await valid_database(path)
    page = 4096
    last = max(i for i in range(len(good) // page) if b"x" * 400 in good[i * page:(i + 1) * page])  # a `messages` leaf
    path.write_bytes(good[:last * page] + random.Random(3).randbytes(page) + good[(last + 1) * page:])
    store = await SqliteStore.open(path)
    try:
        with pytest.raises(StoreCorrupt):
            async with store.transaction() as db:
                await db.execute("UPDATE messages SET status = 7")
    finally:
        await store.close()


def test_run_on_a_corrupt_database_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    """`sms-bridge run` on a corrupt database exits 1 printing one line that names the file, no traceback."""
    db = tmp_path / "bridge.db"
    junk = random.Random(4).randbytes(4096)
    db.write_bytes(junk)
    done = run_to_exit(simulated_config(tmp_path, "rules"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and str(db) in lines[0] and "not a usable SQLite database" in lines[0], done.stderr
    assert db.read_bytes() == junk


# --- schemas of other versions ---------------------------------------------------------------------------


def old_database(path: Path) -> None:
    """A database as the first schema version wrote it, with one message."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(MIGRATIONS[0])
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO messages (id, direction, number, body, device_id, sim, status, customer_id, created, "
            "created_ts, updated_ts) VALUES (62050971, 'in', '+4912312312332', 'INFO please', 11231, 0, 5, NULL, "
            "'2023-11-02T22:44:43+01:00', 1698961483.0, 1698961483.0)")
    finally:
        db.close()


async def test_an_old_schema_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    """A database of schema version 1 opens and ends at SCHEMA_VERSION with the later tables present."""
    path = tmp_path / "bridge.db"
    old_database(path)
    store = await SqliteStore.open(path)
    try:
        assert (await store.fetch_one("SELECT max(version) FROM schema_version"))[0] == SCHEMA_VERSION
        assert await store.fetch_all("SELECT * FROM sends") == []
    finally:
        await store.close()


async def test_migrating_an_old_schema_keeps_its_data(tmp_path: Path) -> None:
    """The message stored under schema version 1 is still there, unchanged, after the migration."""
    path = tmp_path / "bridge.db"
    old_database(path)
    store = await SqliteStore.open(path)
    try:
        row = await store.fetch_one("SELECT id, number, body, status, created_ts, due_ts FROM messages")
        assert tuple(row) == (62050971, "+4912312312332", "INFO please", 5, 1698961483.0, None)
    finally:
        await store.close()


async def test_a_newer_schema_is_refused_and_kept(tmp_path: Path) -> None:
    """A database written by a newer bridge raises SchemaTooNew and keeps its version and data."""
    path = tmp_path / "bridge.db"
    await (await SqliteStore.open(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(SchemaTooNew, match="upgrade"):
        await SqliteStore.open(path)
    assert read_db(path, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION + 1,)]
    assert isinstance(SchemaTooNew("x"), StoreError)


# --- the whole bridge over a locked database ----------------------------------------------------------


async def test_a_send_while_the_database_is_locked_answers_503_not_202(bridge: RunningBridge) -> None:
    """POST /v1/messages while another process locks the database answers 503 with Retry-After, and queues nothing."""
    path = bridge.app[STORE].path
    with database_locked(path):
        status, answer = await bridge.send("+4915752982212", "while locked")
    assert status == 503 and "retry" in answer["error"]
    assert read_db(path, "SELECT count(*) FROM sends WHERE body = 'while locked'") == [(0,)]


async def test_incoming_sms_during_a_database_lock_are_recorded_once_after_it(
        bridge: RunningBridge, sim: SimulatorControl) -> None:
    """Polls that fail on a locked database lose nothing: the SMS that arrived meanwhile each get one event."""
    path = bridge.app[STORE].path
    with database_locked(path):
        ids = [await sim.inbound("+4917642111111", f"during the lock {n}") for n in range(3)]
        await eventually(lambda: bridge.app[POLLER].health().failing_since is not None, what="a poll to fail")

    async def recorded() -> bool:
        return set(ids) <= set(await bridge.received_ids())

    await eventually(recorded, what="the SMS received during the lock")
    received = await bridge.received_ids()
    assert len(received) == len(set(received))


# --- values SQLite cannot hold -----------------------------------------------------------------------


@pytest.mark.parametrize("row", [
    (2**70, "in", "+4915752982212", "hi", None, None, 5, None, "2026-01-01T00:00:00+00:00", 0.0, 0.0, None),
    (1, "in", "+4915752982212", "half \ud83d", None, None, 5, None, "2026-01-01T00:00:00+00:00", 0.0, 0.0, None),
], ids=["huge id", "lone surrogate"])
async def test_a_value_sqlite_cannot_hold_raises_a_store_error_and_writes_nothing(store: Store, row: tuple) -> None:
    """A number too large for SQLite or text that is not valid Unicode is a StoreError, and the transaction
    rolls back as a whole."""
    with pytest.raises(StoreError, match="bridge.db"):
        async with store.transaction() as db:
            await db.insert_send(a_send("msg_kept_back"), 1_000.0)
            await db.insert_messages([row])
    assert await send_ids(store) == []


async def test_a_nul_in_a_body_is_kept_whole_by_grouped_inserts(store: Store) -> None:
    """A text with NUL characters queued with insert_sends is stored whole."""
    body = "Hel\x00lo\x01a\x01b \x00"
    async with store.transaction() as db:
        await db.insert_sends([a_send("msg_nul", body=body)], 1_000.0)
    assert (await store.fetch_one("SELECT body FROM sends"))[0] == body


# --- one bridge per database file -----------------------------------------------------------------------


async def test_a_second_run_on_a_database_in_use_exits_1_naming_the_file(tmp_path: Path) -> None:
    """While a bridge runs on a database, `sms-bridge run` on the same file exits 1 with one line naming it,
    no traceback, and the running bridge stays healthy."""
    async with aiohttp.ClientSession() as session, \
            running_bridge(simulated_config(tmp_path, "first"), session) as first:
        second = await spawn_run(simulated_config(tmp_path, "second"), stdout=asyncio.subprocess.PIPE,
                                 stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(second.communicate(), 30)
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        text = stderr.decode()
        lines = [line for line in text.splitlines() if line.strip()]
        assert second.returncode == 1, text
        assert "Traceback" not in text and len(lines) == 1, text
        assert str(tmp_path / "bridge.db") in lines[0] and "in use" in lines[0], text
        async with session.get(f"{first.url}/healthz") as health:
            assert health.status == 200


@pytest.mark.parametrize("change", ["deleted", "replaced"])
async def test_a_database_file_gone_under_a_running_bridge_stops_sends(tmp_path: Path, change: str) -> None:
    """A database file deleted or replaced while the bridge runs makes /healthz 503 and sends 503 JSON
    saying so, instead of accepting them into a file nobody will read again."""
    async with aiohttp.ClientSession() as session, \
            running_bridge(simulated_config(tmp_path, "bridge"), session) as bridge:
        status, _ = await bridge.send("+4915752982212", "before")
        assert status == 202
        db = tmp_path / "bridge.db"
        if change == "deleted":
            db.unlink()
        else:
            other = tmp_path / "other.db"
            sqlite3.connect(other).close()
            other.replace(db)
        status, answer = await bridge.send("+4915752982212", "after")
        assert status == 503 and change in answer["error"], answer
        async with session.get(f"{bridge.url}/healthz") as health:
            assert health.status == 503
            assert change in (await health.json())["error"]
