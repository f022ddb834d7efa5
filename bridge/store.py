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
        id              INTEGER PRIMARY KEY,
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
    # 3: when a scheduled outgoing message is due (its timetosend): it is not "stuck" before, and is followed after.
    """
    ALTER TABLE messages ADD COLUMN due_ts REAL;
    CREATE INDEX messages_open_due ON messages (due_ts)
        WHERE due_ts IS NOT NULL AND direction = 'out' AND status IN (0, 1, 2, 3, 6);
    """,
    # 4: the earliest time an in-doubt recipient the upstream does not list may be sent again.
    """
    ALTER TABLE recipients ADD COLUMN resend_ts REAL;
    """,
    # 5: the customerid a recipient carries upstream when its send has none: random, so that no other
    # database (another bridge on the same account) hands out the same one; rows already sent keep their id.
    """
    ALTER TABLE recipients ADD COLUMN correlation_id INTEGER;
    UPDATE recipients SET correlation_id = id;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# A fresh correlation customerid: 1 … 2**31 - 1, the upstream's int range (SQLite's random() is 64-bit).
_NEW_CORRELATION_ID = "(abs(random() % 2147483647) + 1)"


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNew(StoreError):
    """The database was written by a newer bridge: upgrade the bridge, do not downgrade the file."""


class StoreCorrupt(StoreError):
    """The file is not a usable SQLite database: restore a backup; the bridge never resets it."""


class StoreUnavailable(StoreError):
    """A write failed for a passing reason (locked, disk full): retry later, nothing was changed."""


class StoreRejected(StoreError):
    """A value SQLite cannot hold (an integer past 64 bits, text that is not valid Unicode): nothing was
    changed, and the same value will be refused again; drop or repair it."""


# Besides SQLite's own errors, what binding a value SQLite cannot hold raises.
_DATABASE_FAILURES = (sqlite3.Error, OverflowError, UnicodeEncodeError)


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
            raise _database_error(self.path, exc) from exc
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
            raise _database_error(self.path, exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block as one write transaction; a failing SQLite raises a StoreError that says what to do."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise _database_error(self.path, exc) from exc
            try:
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
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """Give the connection for reads, never interleaved with another task's open transaction."""
        async with self._lock:
            try:
                yield self._db
            except _DATABASE_FAILURES as exc:
                raise _database_error(self.path, exc) from exc

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
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts, correlation_id) "
            f"VALUES (?, ?, ?, 'queued', ?, ?, {_NEW_CORRELATION_ID})",
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
    # Rows of `messages` are written as MESSAGE_COLUMNS tuples. Lookups by id go through json_each so one
    # statement serves any number of ids; the open-message queries read only the partial indexes.

    MESSAGE_COLUMNS: tuple[str, ...] = (
        "id", "direction", "number", "body", "device_id", "sim", "status", "customer_id",
        "created", "created_ts", "updated_ts", "due_ts",
    )

    async def open_outgoing(self, since_ts: float) -> list[sqlite3.Row]:
        """Outgoing messages not final yet (1, 3, 2, 6, unknown) created or due since `since_ts`, oldest first."""
        return await self.fetch_all(
            "SELECT id, status, created_ts, due_ts, stuck_reported FROM messages "
            "WHERE direction = 'out' AND status IN (0, 1, 2, 3, 6) AND created_ts >= ? "
            "UNION SELECT id, status, created_ts, due_ts, stuck_reported FROM messages INDEXED BY messages_open_due "
            "WHERE due_ts IS NOT NULL AND direction = 'out' AND status IN (0, 1, 2, 3, 6) AND due_ts >= ? "
            "ORDER BY created_ts",
            (since_ts, since_ts),
        )

    @staticmethod
    async def messages_by_id(db: aiosqlite.Connection, ids: Iterable[int]) -> dict[int, sqlite3.Row]:
        """The stored rows among `ids` (every column), keyed by id, inside the caller's transaction."""
        cursor = await db.execute(
            "SELECT m.* FROM json_each(?) AS j JOIN messages AS m ON m.id = j.value",
            (json.dumps(list(ids)),),
        )
        return {row["id"]: row for row in await cursor.fetchall()}

    @staticmethod
    async def insert_messages(db: aiosqlite.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
        """Add newly seen messages (MESSAGE_COLUMNS tuples); an id already stored is left as it is."""
        await db.executemany(
            "INSERT INTO messages (id, direction, number, body, device_id, sim, status, customer_id, created, "
            "created_ts, updated_ts, due_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            rows,
        )

    @staticmethod
    async def record_submitted(
        db: aiosqlite.Connection, sms_id: int, number: str, body: str, device_id: int | None, sim: int | None,
        customer_id: int | None, now: float, due_ts: float | None = None,
    ) -> None:
        """Remember an SMS the bridge just handed to the upstream (status pending) so its status is followed.

        A poll may have stored it first: then the stored row wins. `due_ts` is its timetosend, if scheduled.
        """
        from datetime import datetime, timezone  # only here: the store otherwise deals in Unix seconds

        created = datetime.fromtimestamp(now, timezone.utc).isoformat()
        await Store.insert_messages(
            db, [(sms_id, "out", number, body, device_id, sim, 1, customer_id, created, now, now, due_ts)]
        )

    @staticmethod
    async def update_message_statuses(db: aiosqlite.Connection, changes: Iterable[tuple[int, int, float]]) -> None:
        """Apply (sms id, new status, now) changes inside the caller's transaction."""
        await db.executemany(
            "UPDATE messages SET status = ?, updated_ts = ? WHERE id = ?",
            [(status, now, sms_id) for sms_id, status, now in changes],
        )

    @staticmethod
    async def set_message_due(db: aiosqlite.Connection, sms_id: int, due_ts: float) -> None:
        """Record when a scheduled outgoing message is due (its timetosend)."""
        await db.execute("UPDATE messages SET due_ts = ? WHERE id = ?", (due_ts, sms_id))

    @staticmethod
    async def mark_stuck_reported(db: aiosqlite.Connection, ids: Iterable[int]) -> None:
        """Note that `sms.stuck` was emitted for these messages, so it is emitted once."""
        await db.executemany("UPDATE messages SET stuck_reported = 1 WHERE id = ?", [(i,) for i in ids])

    @staticmethod
    async def known_event_keys(db: aiosqlite.Connection, keys: Iterable[str]) -> set[str]:
        """The dedupe keys among `keys` that already have an event."""
        cursor = await db.execute(
            "SELECT e.dedupe_key FROM json_each(?) AS j JOIN events AS e ON e.dedupe_key = j.value",
            (json.dumps(list(keys)),),
        )
        return {row[0] for row in await cursor.fetchall()}

    @staticmethod
    async def insert_events(db: aiosqlite.Connection, rows: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Add events as (id, dedupe key, type, payload JSON, created_ts) inside the caller's transaction."""
        await db.executemany(
            "INSERT INTO events (id, dedupe_key, type, payload, created_ts) VALUES (?, ?, ?, ?, ?)", rows
        )

    @staticmethod
    async def device_rows(db: aiosqlite.Connection) -> dict[int, sqlite3.Row]:
        """Every known device (id, title, online, last_seen_ts, numbers JSON), keyed by id."""
        cursor = await db.execute("SELECT id, title, online, last_seen_ts, numbers FROM devices")
        return {row["id"]: row for row in await cursor.fetchall()}

    @staticmethod
    async def upsert_devices(
        db: aiosqlite.Connection, rows: Iterable[tuple[int, str, bool, float | None, str]], now: float,
    ) -> None:
        """Store devices as (id, title, online, last_seen_ts, numbers JSON: SIM numbers indexed by slot)."""
        await db.executemany(
            "INSERT INTO devices (id, title, online, last_seen_ts, numbers, updated_ts) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, online = excluded.online, "
            "last_seen_ts = excluded.last_seen_ts, numbers = excluded.numbers, updated_ts = excluded.updated_ts",
            [(i, title, int(online), seen, numbers, now) for i, title, online, seen, numbers in rows],
        )

    async def highest_sms_id(self) -> int | None:
        """The largest upstream SMS id the bridge has recorded, inbound or sent (None before any)."""
        row = await self.fetch_one(
            "SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM messages "
            "UNION ALL SELECT MAX(sms_id) FROM recipients)")
        return row[0] if row else None

    async def own_numbers(self) -> tuple[str, ...]:
        """Every SIM number of the account's devices as getalldevices last reported them."""
        numbers: list[str] = []
        for row in await self.fetch_all("SELECT numbers FROM devices ORDER BY id"):
            numbers.extend(n for n in json.loads(row[0]) if n)
        return tuple(numbers)

    @staticmethod
    async def last_reply_ts(db: aiosqlite.Connection, rule: str, number: str) -> float | None:
        """When `rule` last auto-replied to `number` (the reply cooldown), or None."""
        cursor = await db.execute("SELECT ts FROM cooldowns WHERE rule = ? AND number = ?", (rule, number))
        row = await cursor.fetchone()
        return row[0] if row else None

    @staticmethod
    async def note_reply(db: aiosqlite.Connection, rule: str, number: str, now: float) -> None:
        """Start the reply cooldown of `rule` for `number`."""
        await db.execute(
            "INSERT INTO cooldowns (rule, number, ts) VALUES (?, ?, ?) "
            "ON CONFLICT (rule, number) DO UPDATE SET ts = excluded.ts",
            (rule, number, now),
        )

    @staticmethod
    async def set_opted_out(db: aiosqlite.Connection, number: str, opted_out: bool, source: str, now: float) -> None:
        """Put `number` on the opt-out list (kept from its first opt-out) or take it off."""
        if opted_out:
            await db.execute(
                "INSERT INTO opt_outs (number, source, created_ts) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
                (number, source, now),
            )
        else:
            await db.execute("DELETE FROM opt_outs WHERE number = ?", (number,))

    # --- outbox (delivery) --------------------------------------------------------------------
    # A lane is the rows of one kind and, for webhooks, one target. A row never attempted waits `first_delay`
    # (the target's delay before attempt 1) past its next_attempt_ts.

    async def due_deliveries(
        self, now: float, kind: str, target: str | None, first_delay: float, limit: int, exclude: Iterable[int],
    ) -> list[sqlite3.Row]:
        """Up to `limit` pending rows of a lane due at `now`, oldest first, with their event's `payload`."""
        lane, params = self._lane_filter(kind, target, exclude)
        # Walk outbox_due in order and join only the rows taken: the planner would rather sort every pending row.
        sql = (
            "SELECT o.id, o.event_id, o.kind, o.target, o.rule, o.spec, o.attempts, e.payload FROM ("
            " SELECT o.id, o.event_id, o.kind, o.target, o.rule, o.spec, o.attempts, o.next_attempt_ts"
            " FROM outbox o INDEXED BY outbox_due"
            f" WHERE o.state = 'pending' AND o.next_attempt_ts <= ? AND {lane}"
            " AND (o.attempts > 0 OR o.next_attempt_ts <= ?) ORDER BY o.next_attempt_ts, o.id LIMIT ?"
            ") o JOIN events e ON e.id = o.event_id ORDER BY o.next_attempt_ts, o.id"
        )
        return await self.fetch_all(sql, (now, *params, now - first_delay, limit))

    async def next_delivery_ts(self, kind: str, target: str | None, first_delay: float,
                               exclude: Iterable[int]) -> float | None:
        """When the next pending row of a lane falls due (rows in `exclude` left out), or None if none is pending."""
        lane, params = self._lane_filter(kind, target, exclude)
        first = (f"SELECT o.next_attempt_ts + ? AS due FROM outbox o INDEXED BY outbox_due WHERE o.state = 'pending' "
                 f"AND {lane} AND o.attempts = 0 ORDER BY o.next_attempt_ts LIMIT 1")
        retry = (f"SELECT o.next_attempt_ts AS due FROM outbox o INDEXED BY outbox_due WHERE o.state = 'pending' "
                 f"AND {lane} AND o.attempts > 0 ORDER BY o.next_attempt_ts LIMIT 1")
        row = await self.fetch_one(
            f"SELECT min(due) FROM (SELECT * FROM ({first}) UNION ALL SELECT * FROM ({retry}))",
            (first_delay, *params, *params),
        )
        return row[0]

    @staticmethod
    async def record_attempts(db: aiosqlite.Connection,
                              outcomes: Iterable[tuple[int, str, float, str | None, int | None]], now: float) -> None:
        """Count one attempt of each outbox row and set its outcome, inside the caller's transaction; each
        outcome is (id, state, next_attempt_ts, last_error, last_status)."""
        await db.executemany(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt_ts = ?, last_error = ?, "
            "last_status = ?, updated_ts = ? WHERE id = ?",
            [(state, next_ts, error, status, now, row_id) for row_id, state, next_ts, error, status in outcomes],
        )

    @staticmethod
    async def disable_target(db: aiosqlite.Connection, name: str, reason: str, now: float) -> bool:
        """Mark a webhook target disabled inside the caller's transaction; False when it already was."""
        cursor = await db.execute(
            "INSERT INTO disabled_targets (name, reason, disabled_ts) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, reason, now),
        )
        return cursor.rowcount > 0

    async def disabled_targets(self) -> list[sqlite3.Row]:
        """The disabled webhook targets: name, reason, disabled_ts."""
        return await self.fetch_all("SELECT name, reason, disabled_ts FROM disabled_targets ORDER BY name")

    async def pending_deliveries_by_target(self) -> list[sqlite3.Row]:
        """How many rows are pending per kind and target: kind, target, count."""
        return await self.fetch_all(
            "SELECT kind, target, count(*) AS count FROM outbox WHERE state = 'pending' GROUP BY kind, target"
        )

    async def list_deliveries(self, failed_only: bool = False) -> list[sqlite3.Row]:
        """Outbox rows with their event type, oldest first; `failed_only`: dead rows and pending ones that failed."""
        where = "WHERE o.state = 'dead' OR (o.state = 'pending' AND o.attempts > 0)" if failed_only else ""
        return await self.fetch_all(
            "SELECT o.id, o.event_id, e.type AS event_type, o.kind, o.target, o.rule, o.state, o.attempts, "
            "o.next_attempt_ts, o.last_error, o.last_status, o.created_ts, o.updated_ts "
            f"FROM outbox o JOIN events e ON e.id = o.event_id {where} ORDER BY o.id"
        )

    async def delivery_states(self, ids: Iterable[int]) -> list[sqlite3.Row]:
        """The state of each existing outbox row among `ids`: id, state."""
        id_list = list(ids)
        return await self.fetch_all(
            f"SELECT id, state FROM outbox WHERE id IN ({','.join('?' * len(id_list))})", id_list)

    async def replay_deliveries(self, now: float, ids: Iterable[int] | None = None,
                                target: str | None = None) -> tuple[list[int], list[str]]:
        """Re-queue dead rows (those of `ids`, else all; only `target`'s when given) as never attempted and due
        at `now`, and re-enable the webhook targets they go to (and `target`). Returns (row ids, targets enabled)."""
        where, params = "state = 'dead'", []
        if ids is not None:
            id_list = list(ids)
            where += f" AND id IN ({','.join('?' * len(id_list))})"
            params += id_list
        if target is not None:
            where += " AND kind = 'webhook' AND target = ?"
            params.append(target)
        async with self.transaction() as db:
            rows = list(await (await db.execute(f"SELECT id, kind, target FROM outbox WHERE {where}", params)).fetchall())
            await db.executemany(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ts = ?, updated_ts = ? WHERE id = ?",
                [(now, now, row["id"]) for row in rows],
            )
            names = {row["target"] for row in rows if row["kind"] == "webhook"} | ({target} if target else set())
            enabled = []
            for name in sorted(names):
                cursor = await db.execute("DELETE FROM disabled_targets WHERE name = ?", (name,))
                if cursor.rowcount > 0:
                    enabled.append(name)
        return [row["id"] for row in rows], enabled

    @staticmethod
    def _lane_filter(kind: str, target: str | None, exclude: Iterable[int]) -> tuple[str, list[Any]]:
        """SQL condition (on alias `o`) and parameters selecting a lane's rows, those in `exclude` left out."""
        sql, params = "o.kind = ?", [kind]
        if target is not None:
            sql += " AND o.target = ?"
            params.append(target)
        excluded = list(exclude)
        if excluded:
            sql += f" AND o.id NOT IN ({','.join('?' * len(excluded))})"
            params += excluded
        return sql, params

    # --- sends, recipients, idempotency, opt-outs (sender, server) ----------------------------
    # Queries on recipients repeat the partial index's `state IN (...)` term so SQLite reads recipients_due.
    # Id and number lists go through json_each so one statement serves any number of them.

    _RECIPIENT_FIELDS = (
        "SELECT r.id, r.send_id, r.number, r.state, r.attempts, r.submitted_ts, r.resend_ts, r.correlation_id, "
        "s.body, s.device_id, s.sim, s.send_at, s.urgent, s.customer_id FROM recipients r JOIN sends s ON s.id = r.send_id "
    )

    @staticmethod
    async def insert_sends(db: aiosqlite.Connection, sends: Iterable[NewSend], now: float) -> None:
        """Queue many sends and their recipients, inside the caller's transaction.

        Two statements over JSON arrays rather than executemany: SQLite then runs each in one call, so the
        database thread does not wait for the event loop's thread once per row to bind parameters.
        """
        sends = list(sends)
        rows = [[s.id, s.source, _json_text(s.body), s.device_id, s.sim, s.send_at, int(s.urgent), s.customer_id,
                 s.event_id, int(s.is_reply)] for s in sends]
        columns = [f"json_extract(value, '$[{i}]')" for i in range(10)]
        columns[2] = _TEXT_OF_JSON.format(columns[2])  # the body
        await db.execute(
            "INSERT INTO sends (id, source, body, device_id, sim, send_at, urgent, customer_id, event_id, "
            "is_reply, created_ts) SELECT " + ", ".join(columns) + ", ? FROM json_each(?)",
            (now, json.dumps(rows)),
        )
        recipients = [[s.id, i, number] for s in sends for i, number in enumerate(s.recipients)]
        await db.execute(
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts, correlation_id) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
            f"'queued', ?1, ?1, {_NEW_CORRELATION_ID} FROM json_each(?2)",
            (now, json.dumps(recipients)),
        )

    @staticmethod
    async def save_answers(
        db: aiosqlite.Connection, answers: Iterable[tuple[str, str, str, int, str]], now: float,
    ) -> None:
        """Store final answers as (scope, key, request hash, status, response JSON); an expired key is replaced."""
        await db.executemany(
            "INSERT INTO idempotency (scope, key, request_hash, state, status, response, created_ts) "
            "VALUES (?, ?, ?, 'done', ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET "
            "request_hash = excluded.request_hash, state = 'done', status = excluded.status, "
            "response = excluded.response, created_ts = excluded.created_ts",
            [(*answer, now) for answer in answers],
        )

    async def get_answer(self, scope: str, key: str, since: float) -> sqlite3.Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        return await self.fetch_one(
            "SELECT request_hash, status, response FROM idempotency "
            "WHERE scope = ? AND key = ? AND state = 'done' AND created_ts >= ?",
            (scope, key, since),
        )

    @staticmethod
    async def purge_expired(db: aiosqlite.Connection, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""
        await db.execute("DELETE FROM idempotency WHERE created_ts < ?", (answers_before,))
        await db.execute("DELETE FROM sent_log WHERE ts < ?", (sent_log_before,))

    async def get_send(self, send_id: str) -> tuple[sqlite3.Row, list[sqlite3.Row]] | None:
        """A send (id, source, send_at, created_ts) and its recipients in order (number, sms_id, state, reason and
        `status`, the upstream status the poller last saw, or None), or None for an unknown id."""
        async with self.reading() as db:
            send = await (await db.execute(
                "SELECT id, source, send_at, created_ts FROM sends WHERE id = ?", (send_id,)
            )).fetchone()
            if send is None:
                return None
            cursor = await db.execute(
                "SELECT r.number, r.sms_id, r.state, r.reason, m.status FROM recipients r "
                "LEFT JOIN messages m ON m.id = r.sms_id WHERE r.send_id = ? ORDER BY r.position",
                (send_id,),
            )
            return send, list(await cursor.fetchall())

    async def send_queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, and outbox rows pending and dead, by name."""
        depths = {"queued": 0, "submitting": 0, "in_doubt": 0}
        async with self.reading() as db:
            cursor = await db.execute(
                "SELECT state, count(*) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
                "GROUP BY state"
            )
            depths.update({row[0]: row[1] for row in await cursor.fetchall()})
            for state in ("pending", "dead"):
                row = await (await db.execute("SELECT count(*) FROM outbox WHERE state = ?", (state,))).fetchone()
                depths[f"outbox_{state}"] = row[0]
        return depths

    @staticmethod
    async def recover_submitting(db: aiosqlite.Connection, due_ts: float, now: float) -> int:
        """Put recipients a stopped process left `submitting` in doubt, due at `due_ts`; returns how many."""
        cursor = await db.execute(
            "UPDATE recipients SET state = 'in_doubt', next_attempt_ts = ?, updated_ts = ? "
            "WHERE state IN ('queued', 'submitting', 'in_doubt') AND state = 'submitting'",
            (due_ts, now),
        )
        return cursor.rowcount

    @staticmethod
    async def due_recipients(db: aiosqlite.Connection, state: str, now: float, limit: int) -> list[sqlite3.Row]:
        """Up to `limit` recipients in `state` (queued or in_doubt) due at `now`, oldest first, with their send."""
        cursor = await db.execute(
            Store._RECIPIENT_FIELDS + "WHERE r.state IN ('queued', 'submitting', 'in_doubt') AND r.state = ? "
            "AND r.next_attempt_ts <= ? ORDER BY r.next_attempt_ts, r.id LIMIT ?",
            (state, now, limit),
        )
        return list(await cursor.fetchall())

    @staticmethod
    async def recipients_by_id(db: aiosqlite.Connection, ids: Iterable[int]) -> list[sqlite3.Row]:
        """The recipients among `ids` that are submitted without a known sms id, with their send."""
        cursor = await db.execute(
            Store._RECIPIENT_FIELDS + "WHERE r.id IN (SELECT value FROM json_each(?)) "
            "AND r.state = 'submitted' AND r.sms_id IS NULL ORDER BY r.id",
            (json.dumps(list(ids)),),
        )
        return list(await cursor.fetchall())

    async def next_recipient_due(self) -> float | None:
        """When the next queued or in-doubt recipient falls due, or None when there is none."""
        row = await self.fetch_one(
            "SELECT min(next_attempt_ts) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "AND state != 'submitting'"
        )
        return row[0]

    async def unlearned_recipient_ids(self, since: float) -> list[int]:
        """Recipients submitted after `since` whose upstream sms id is not known yet (a full scan: startup only)."""
        rows = await self.fetch_all(
            "SELECT id FROM recipients WHERE state = 'submitted' AND sms_id IS NULL AND submitted_ts >= ?", (since,)
        )
        return [row[0] for row in rows]

    @staticmethod
    async def opted_out(db: aiosqlite.Connection, numbers: Iterable[str]) -> set[str]:
        """The numbers among `numbers` that are on the opt-out list."""
        cursor = await db.execute(
            "SELECT o.number FROM json_each(?) AS j JOIN opt_outs o ON o.number = j.value",
            (json.dumps(sorted(set(numbers))),),
        )
        return {row[0] for row in await cursor.fetchall()}

    @staticmethod
    async def recent_sends(db: aiosqlite.Connection, numbers: Iterable[str],
                           since: float) -> dict[tuple[str, str], int]:
        """How many texts went to each of `numbers` after `since`, keyed by (number, body hash)."""
        cursor = await db.execute(
            "SELECT l.number, l.body_hash, count(*) FROM json_each(?) AS j JOIN sent_log l ON l.number = j.value "
            "WHERE l.ts > ? GROUP BY l.number, l.body_hash",
            (json.dumps(sorted(set(numbers))), since),
        )
        return {(row[0], row[1]): row[2] for row in await cursor.fetchall()}

    @staticmethod
    async def log_sent(db: aiosqlite.Connection, entries: Iterable[tuple[str, str]], now: float) -> None:
        """Note texts going out now as (number, body hash), for the loop guard."""
        await db.executemany(
            "INSERT INTO sent_log (number, body_hash, ts) VALUES (?, ?, ?)", [(*entry, now) for entry in entries]
        )

    @staticmethod
    async def set_recipients(
        db: aiosqlite.Connection, state: str, changes: Iterable[tuple[int, str | None, float]], now: float,
    ) -> None:
        """Move recipients, given as (id, reason, next_attempt_ts), to `state`."""
        await db.executemany(
            "UPDATE recipients SET state = ?, reason = ?, next_attempt_ts = ?, updated_ts = ? WHERE id = ?",
            [(state, reason, due, now, rid) for rid, reason, due in changes],
        )

    @staticmethod
    async def set_in_doubt(
        db: aiosqlite.Connection, changes: Iterable[tuple[int, str, float, float]], now: float,
    ) -> None:
        """Put recipients, given as (id, reason, next lookup ts, earliest resend ts), in doubt."""
        await db.executemany(
            "UPDATE recipients SET state = 'in_doubt', reason = ?, next_attempt_ts = ?, resend_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(reason, due, resend, now, rid) for rid, reason, due, resend in changes],
        )

    @staticmethod
    async def mark_submitting(db: aiosqlite.Connection, ids: Iterable[int], now: float) -> None:
        """Count an attempt for each recipient about to be handed to the upstream."""
        await db.executemany(
            "UPDATE recipients SET state = 'submitting', attempts = attempts + 1, reason = NULL, submitted_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(now, now, rid) for rid in ids],
        )

    @staticmethod
    async def mark_submitted(db: aiosqlite.Connection, changes: Iterable[tuple[int, int | None, float]],
                             now: float) -> None:
        """Recipients the upstream accepted, as (id, sms id or None while unknown, next_attempt_ts)."""
        await db.executemany(
            "UPDATE recipients SET state = 'submitted', sms_id = ?, reason = NULL, next_attempt_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(sms_id, due, now, rid) for rid, sms_id, due in changes],
        )

    @staticmethod
    async def assigned_sms_ids(db: aiosqlite.Connection, sms_ids: Iterable[int]) -> set[int]:
        """The upstream ids among `sms_ids` that a recipient already claims."""
        cursor = await db.execute(
            "SELECT r.sms_id FROM json_each(?) AS j JOIN recipients r ON r.sms_id = j.value",
            (json.dumps(list(sms_ids)),),
        )
        return {row[0] for row in await cursor.fetchall()}


# SQLite's JSON functions end a string at its first NUL: free text crosses JSON with NUL written as \x01 "0"
# and \x01 itself as \x01 "1", and _TEXT_OF_JSON (an SQL expression around the extracted value) undoes it.
_TEXT_OF_JSON = "replace(replace({}, char(1) || '0', char(0)), char(1) || '1', char(1))"


def _json_text(text: str) -> str:
    """`text` written so that it survives SQLite's JSON functions whole (read back with _TEXT_OF_JSON)."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x011").replace("\x00", "\x010")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


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
