"""SQLite backend: one aiosqlite connection in WAL mode, the embedded default.

Every state change runs inside `transaction()`, which holds an asyncio lock around `BEGIN IMMEDIATE … COMMIT`,
so a multi-statement change is all-or-nothing and a crash at any instant leaves either the old state or the
new one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bridge.store.base import Store, Tx, replica_name
from bridge.store.errors import (
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreFileLost,
    StoreRejected,
    StoreUnavailable,
)
from bridge.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements, upgrade_rows
from bridge.store.messages import INDEXED_TERM_LENGTH, contains_pattern
from bridge.store.records import Row
from bridge.store.sqlite.cursors import SqliteCursors
from bridge.store.sqlite.devices import SqliteDevices
from bridge.store.sqlite.events import SqliteEvents
from bridge.store.sqlite.idempotency import SqliteIdempotency
from bridge.store.sqlite.leases import SqliteLeases
from bridge.store.sqlite.messages import TEXT_TABLE, SqliteMessages
from bridge.store.sqlite.outbox import SqliteOutbox
from bridge.store.sqlite.pool import SqlitePool
from bridge.store.sqlite.safety import SqliteSafety
from bridge.store.sqlite.sends import SqliteSends

# Besides SQLite's own errors, what binding a value SQLite cannot hold raises.
_DATABASE_FAILURES = (sqlite3.Error, OverflowError, UnicodeEncodeError)


class SqliteTx(SqliteCursors, SqliteMessages, SqliteEvents, SqliteDevices, SqliteSafety, SqliteIdempotency,
               SqliteSends, SqliteOutbox, SqlitePool, SqliteLeases, Tx):
    """The store's statements on the one connection, inside the transaction (or read) that made it."""

    def __init__(self, db: aiosqlite.Connection, holder: str) -> None:
        self._db = db
        self._holder = holder

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one SQLite statement."""
        await self._db.execute(sql, tuple(params))


class SqliteStore(Store):
    """The bridge's SQLite database; open with `SqliteStore.open`, close with `close`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.path = path
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._text_indexed = False  # the FTS5 table exists (this SQLite has the trigram tokenizer)
        self.holder = replica_name()
        self._tx = SqliteTx(db, self.holder)

    @classmethod
    async def open(cls, path: str | Path, synchronous: str = "normal", busy_timeout_ms: int = 5000, *,
                   default_region: str | None = None) -> SqliteStore:
        """Open (creating if needed) and migrate the database at `path`; numbers an older bridge stored without
        a country code are read in `default_region` (gateway.default_region)."""
        path = Path(path)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await store._configure(synchronous, busy_timeout_ms)
            store._identity = store._file_identity()
            await store._migrate(default_region)
            store._text_indexed = await store._fetch_value(
                f"SELECT count(*) FROM sqlite_master WHERE name = '{TEXT_TABLE}'") == 1
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection; committed work is on disk."""
        await self._db.close()

    async def _configure(self, synchronous: str, busy_timeout_ms: int) -> None:
        self._db.row_factory = sqlite3.Row
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = await self._fetch_value("PRAGMA journal_mode = WAL")
            await self._db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
            await self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise _database_error(self.path, exc) from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the database to WAL mode (got {mode})")

    async def _migrate(self, region: str | None) -> None:
        try:
            async with self._transaction() as db:
                await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = await (await db.execute("SELECT max(version) FROM schema_version")).fetchone()
                current = row[0] or 0
                if current > SCHEMA_VERSION:
                    raise SchemaTooNew(
                        f"{self.path}: database schema version {current} is newer than this bridge "
                        f"understands ({SCHEMA_VERSION}); upgrade sms-bridge"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in statements(MIGRATIONS[version - 1]):
                        await db.execute(statement)
                    await upgrade_rows(self._tx, version, region)
                    await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        except sqlite3.DatabaseError as exc:
            raise _database_error(self.path, exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """Run the block as one write transaction; a failing SQLite raises a StoreError that says what to do."""
        async with self._transaction():
            yield self._tx

    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file at the database's path now, or None when there is none."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_dev, info.st_ino

    def _check_file(self) -> None:
        """StoreFileLost when the file at the path is no longer the one opened (deleted, or replaced)."""
        if self._identity is None:
            return
        now = self._file_identity()
        if now == self._identity:
            return
        change = "deleted" if now is None else "replaced by another file"
        raise StoreFileLost(f"{self.path}: the database file was {change} while the bridge ran; nothing more is "
                            "stored: restore the file and restart the bridge")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            self._check_file()
            try:
                # A caller cancelled while BEGIN waits for another writer does not stop the BEGIN: it runs on in
                # the connection's thread, so the rollback below (queued behind it) must undo it.
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, _DATABASE_FAILURES):
                    raise _database_error(self.path, exc) from exc
                raise

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (e.g. after SQLITE_FULL)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Tx]:
        """Give the connection for reads, never interleaved with another task's open transaction."""
        async with self._lock:
            self._check_file()
            try:
                yield self._tx
            except _DATABASE_FAILURES as exc:
                raise _database_error(self.path, exc) from exc

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Rows of one read query."""
        async with self.reading():
            cursor = await self._db.execute(sql, tuple(params))
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of one read query, or None."""
        async with self.reading():
            cursor = await self._db.execute(sql, tuple(params))
            return await cursor.fetchone()

    def text_contains(self, term: str) -> tuple[str, list[Any]]:
        """The body contains `term` (SQLite's LIKE folds A-Z only, as the search does)."""
        return "body LIKE ? ESCAPE '\\'", [contains_pattern(term)]

    async def text_indexed(self, term: str, cap: int) -> tuple[str, list[Any]] | None:
        """The body contains `term`, for the ids the FTS5 index holds for it (when no more than `cap`: the rows
        are then sorted by time, which for a common term costs more than a scan finding it)."""
        if not self._text_indexed or len(term) < INDEXED_TERM_LENGTH:
            return None
        phrase = '"' + term.replace('"', '""') + '"'
        candidates = await self.fetch_one(
            f"SELECT count(*) FROM (SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ? LIMIT ?)",
            (phrase, cap + 1))
        if candidates[0] > cap:
            return None
        contains, params = self.text_contains(term)
        return f"id IN (SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?) AND {contains}", [phrase, *params]

    async def _fetch_value(self, sql: str) -> Any:
        cursor = await self._db.execute(sql)
        row = await cursor.fetchone()
        return row[0] if row else None


def _database_error(path: Path, exc: Exception) -> StoreError:
    """The StoreError for a database failure: corrupt (restore a backup), passing (retry), a value it cannot
    hold, or other."""
    text = str(exc)
    if not isinstance(exc, sqlite3.DatabaseError):
        return StoreRejected(f"{path}: a value the database cannot hold: {type(exc).__name__}: {text}")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreCorrupt(
            f"{path}: the file is not a usable SQLite database ({text}); restore it from a backup "
            "or move it away to start empty — the bridge will not reset it"
        )
    if "locked" in text or "busy" in text:
        return StoreUnavailable(f"{path}: the database is locked by another process ({text})")
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"{path}: {text}")
    return StoreError(f"{path}: {text}")
