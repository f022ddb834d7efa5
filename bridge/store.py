"""SQLite storage: seen messages, events, the outbox, the send queue, idempotency keys, opt-outs, cursors.

One aiosqlite connection in WAL mode. Every state change runs inside `transaction()`, which holds an
asyncio lock around `BEGIN IMMEDIATE … COMMIT`, so a multi-statement change is all-or-nothing and a
crash at any instant leaves either the old state or the new one. Times are Unix seconds passed in by
the caller: the store never reads the clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

# Each entry upgrades the schema by one version; an existing database runs the ones it lacks.
MIGRATIONS: tuple[str, ...] = (
    # 1: what the poller and the webhook outbox need.
    """
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY,          -- upstream sms id
        direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        number      TEXT NOT NULL,                -- the API's sendto: sender when 'in', recipient when 'out'
        body        TEXT NOT NULL,
        device_id   INTEGER,
        sim         INTEGER,
        status      INTEGER NOT NULL,
        customer_id INTEGER,
        created     TEXT NOT NULL,                -- ISO 8601 with the upstream's offset
        created_ts  REAL NOT NULL,
        updated_ts  REAL NOT NULL,
        stuck_reported INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_created ON messages (created_ts);
    CREATE INDEX messages_open ON messages (created_ts)
        WHERE direction = 'out' AND status IN (0, 1, 2, 3, 6);

    CREATE TABLE events (
        id          TEXT PRIMARY KEY,
        dedupe_key  TEXT NOT NULL UNIQUE,
        type        TEXT NOT NULL,
        payload     TEXT NOT NULL,                -- the event JSON without `rule`
        created_ts  REAL NOT NULL
    );

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        event_id        TEXT NOT NULL REFERENCES events (id),
        kind            TEXT NOT NULL,            -- 'webhook' | 'tag'
        target          TEXT NOT NULL,            -- webhook name, or tag id
        rule            TEXT,
        spec            TEXT NOT NULL DEFAULT '{}', -- JSON: template, match groups, tag name, phone
        state           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL NOT NULL,
        last_error      TEXT,
        last_status     INTEGER,
        created_ts      REAL NOT NULL,
        updated_ts      REAL NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_ts) WHERE state = 'pending';
    CREATE INDEX outbox_state ON outbox (state, id);

    CREATE TABLE cursors (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE devices (
        id           INTEGER PRIMARY KEY,
        title        TEXT NOT NULL,
        online       INTEGER NOT NULL,
        last_seen_ts REAL,
        numbers      TEXT NOT NULL DEFAULT '[]',  -- JSON list of the SIM numbers
        updated_ts   REAL NOT NULL
    );
    """,
    # 2: the send queue, idempotency keys, safety state and disabled webhook targets.
    """
    CREATE TABLE sends (
        id          TEXT PRIMARY KEY,             -- msg_…
        source      TEXT NOT NULL,                -- api | hook:NAME | rule:NAME
        body        TEXT NOT NULL,
        device_id   INTEGER,
        sim         INTEGER,
        send_at     TEXT,                         -- timetosend, ISO 8601
        urgent      INTEGER NOT NULL DEFAULT 0,
        customer_id INTEGER,
        event_id    TEXT,
        is_reply    INTEGER NOT NULL DEFAULT 0,
        created_ts  REAL NOT NULL
    );

    CREATE TABLE recipients (
        id              INTEGER PRIMARY KEY,      -- also the correlation customerid when the send has none
        send_id         TEXT NOT NULL REFERENCES sends (id),
        position        INTEGER NOT NULL,
        number          TEXT NOT NULL,
        state           TEXT NOT NULL,            -- queued | submitting | submitted | in_doubt | failed | refused
        sms_id          INTEGER,
        reason          TEXT,                     -- why failed or refused
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ts REAL NOT NULL,
        submitted_ts    REAL,
        updated_ts      REAL NOT NULL
    );
    CREATE INDEX recipients_due ON recipients (next_attempt_ts)
        WHERE state IN ('queued', 'submitting', 'in_doubt');
    CREATE INDEX recipients_send ON recipients (send_id, position);
    CREATE INDEX recipients_sms ON recipients (sms_id) WHERE sms_id IS NOT NULL;

    CREATE TABLE idempotency (
        scope        TEXT NOT NULL,               -- a hash of the API key
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        state        TEXT NOT NULL,               -- running | done
        status       INTEGER,
        response     TEXT,
        created_ts   REAL NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_age ON idempotency (created_ts);

    CREATE TABLE opt_outs (
        number     TEXT PRIMARY KEY,
        source     TEXT NOT NULL,
        created_ts REAL NOT NULL
    );

    CREATE TABLE sent_log (                       -- recent texts per number, for the loop guard
        number    TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        ts        REAL NOT NULL
    );
    CREATE INDEX sent_log_lookup ON sent_log (number, body_hash, ts);

    CREATE TABLE cooldowns (
        rule   TEXT NOT NULL,
        number TEXT NOT NULL,
        ts     REAL NOT NULL,
        PRIMARY KEY (rule, number)
    );

    CREATE TABLE disabled_targets (
        name        TEXT PRIMARY KEY,
        reason      TEXT NOT NULL,
        disabled_ts REAL NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNew(StoreError):
    """The database was written by a newer bridge: upgrade the bridge, do not downgrade the file."""


class StoreCorrupt(StoreError):
    """The file is not a usable SQLite database: restore a backup; the bridge never resets it."""


class StoreUnavailable(StoreError):
    """A write failed for a passing reason (locked, disk full): retry later, nothing was changed."""


@dataclass(frozen=True, slots=True)
class NewSend:
    """An accepted send (from the API, an inbound hook or a rule) to queue for the sender."""

    id: str
    source: str
    recipients: tuple[str, ...]
    body: str
    device_id: int | None
    sim: int | None
    send_at: str | None = None
    urgent: bool = False
    customer_id: int | None = None
    event_id: str | None = None
    is_reply: bool = False


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One outbox row to create for an event: a webhook to call or a contact to tag."""

    event_id: str
    kind: str
    target: str
    rule: str | None
    spec: Mapping[str, object] = field(default_factory=dict)


class Store:
    """The bridge's SQLite database; open with `Store.open`, close with `close`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: str | Path, synchronous: str = "normal", busy_timeout_ms: int = 5000) -> Store:
        """Open (creating if needed) and migrate the database at `path`."""
        path = Path(path)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await store._configure(synchronous, busy_timeout_ms)
            await store._migrate()
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
            raise _open_error(self.path, exc) from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the database to WAL mode (got {mode})")

    async def _migrate(self) -> None:
        try:
            async with self.transaction() as db:
                await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = await (await db.execute("SELECT max(version) FROM schema_version")).fetchone()
                current = row[0] or 0
                if current > SCHEMA_VERSION:
                    raise SchemaTooNew(
                        f"{self.path}: database schema version {current} is newer than this bridge "
                        f"understands ({SCHEMA_VERSION}); upgrade sms-bridge"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in _statements(MIGRATIONS[version - 1]):
                        await db.execute(statement)
                    await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        except sqlite3.DatabaseError as exc:
            raise _open_error(self.path, exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block as one write transaction; raises StoreUnavailable when SQLite cannot write now."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.OperationalError):
                    raise StoreUnavailable(f"{self.path}: {exc}") from exc
                raise

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (e.g. after SQLITE_FULL)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """Give the connection for reads, never interleaved with another task's open transaction."""
        async with self._lock:
            yield self._db

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read query."""
        async with self.reading() as db:
            cursor = await db.execute(sql, tuple(params))
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row of one read query, or None."""
        async with self.reading() as db:
            cursor = await db.execute(sql, tuple(params))
            return await cursor.fetchone()

    async def _fetch_value(self, sql: str) -> Any:
        cursor = await self._db.execute(sql)
        row = await cursor.fetchone()
        return row[0] if row else None

    # --- cursors ------------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> str | None:
        """The stored value of a named poll cursor, or None before the first poll."""
        row = await self.fetch_one("SELECT value FROM cursors WHERE name = ?", (name,))
        return row[0] if row else None

    @staticmethod
    async def set_cursor(db: aiosqlite.Connection, name: str, value: str) -> None:
        """Set a named cursor inside the caller's transaction."""
        await db.execute(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    @staticmethod
    async def insert_send(db: aiosqlite.Connection, send: NewSend, now: float) -> None:
        """Queue a send and one row per recipient, inside the caller's transaction."""
        await db.execute(
            "INSERT INTO sends (id, source, body, device_id, sim, send_at, urgent, customer_id, event_id, "
            "is_reply, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (send.id, send.source, send.body, send.device_id, send.sim, send.send_at, int(send.urgent),
             send.customer_id, send.event_id, int(send.is_reply), now),
        )
        await db.executemany(
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts) "
            "VALUES (?, ?, ?, 'queued', ?, ?)",
            [(send.id, i, number, now, now) for i, number in enumerate(send.recipients)],
        )

    @staticmethod
    async def insert_delivery(db: aiosqlite.Connection, delivery: NewDelivery, now: float) -> None:
        """Add one outbox row, due at once, inside the caller's transaction."""
        await db.execute(
            "INSERT INTO outbox (event_id, kind, target, rule, spec, next_attempt_ts, created_ts, updated_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (delivery.event_id, delivery.kind, delivery.target, delivery.rule,
             json.dumps(dict(delivery.spec), separators=(",", ":")), now, now, now),
        )

    # --- messages, events (poller) ------------------------------------------------------------

    # --- outbox (delivery) --------------------------------------------------------------------

    # --- sends, recipients, idempotency, opt-outs (sender, server) ----------------------------


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    text = str(exc)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreCorrupt(
            f"{path}: the file is not a usable SQLite database ({text}); restore it from a backup "
            "or move it away to start empty — the bridge will not reset it"
        )
    if "locked" in text or "busy" in text:
        return StoreUnavailable(f"{path}: the database is locked by another process ({text})")
    return StoreError(f"{path}: {text}")
