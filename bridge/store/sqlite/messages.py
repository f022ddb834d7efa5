"""Message statements on SQLite.

Lookups by id go through json_each so one statement serves any number of ids; the open-message queries read
only the partial indexes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

import aiosqlite

from bridge.store.messages import MessageOps
from bridge.store.records import Row

log = logging.getLogger(__name__)

# An external-content FTS5 table over messages.body (its rowid the message id), trigram-tokenized so that any
# substring of three characters or more is found through it; triggers keep it in step with every change.
TEXT_TABLE = "messages_text"
_TEXT_INDEX = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TEXT_TABLE} USING "
    "fts5(body, content='messages', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS messages_text_insert AFTER INSERT ON messages BEGIN "
    f"INSERT INTO {TEXT_TABLE} (rowid, body) VALUES (new.id, new.body); END",
    f"CREATE TRIGGER IF NOT EXISTS messages_text_delete AFTER DELETE ON messages BEGIN "
    f"INSERT INTO {TEXT_TABLE} ({TEXT_TABLE}, rowid, body) VALUES ('delete', old.id, old.body); END",
    f"CREATE TRIGGER IF NOT EXISTS messages_text_update AFTER UPDATE OF id, body ON messages BEGIN "
    f"INSERT INTO {TEXT_TABLE} ({TEXT_TABLE}, rowid, body) VALUES ('delete', old.id, old.body); "
    f"INSERT INTO {TEXT_TABLE} (rowid, body) VALUES (new.id, new.body); END",
    f"INSERT INTO {TEXT_TABLE} ({TEXT_TABLE}) VALUES ('rebuild')",
)


class SqliteMessages(MessageOps):
    """The `messages` table."""

    _db: aiosqlite.Connection

    async def open_outgoing(self, since_ts: float) -> list[Row]:
        """Outgoing messages not final yet (1, 3, 2, 6, unknown) created or due since `since_ts`, oldest first."""
        cursor = await self._db.execute(
            "SELECT id, status, created_ts, due_ts, stuck_reported FROM messages "
            "WHERE direction = 'out' AND status IN (0, 1, 2, 3, 6) AND created_ts >= ? "
            "UNION SELECT id, status, created_ts, due_ts, stuck_reported FROM messages INDEXED BY messages_open_due "
            "WHERE due_ts IS NOT NULL AND direction = 'out' AND status IN (0, 1, 2, 3, 6) AND due_ts >= ? "
            "ORDER BY created_ts",
            (since_ts, since_ts),
        )
        return list(await cursor.fetchall())

    async def messages_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        """The stored rows among `ids` (every column), keyed by id."""
        cursor = await self._db.execute(
            "SELECT m.* FROM json_each(?) AS j JOIN messages AS m ON m.id = j.value",
            (json.dumps(list(ids)),),
        )
        return {row["id"]: row for row in await cursor.fetchall()}

    async def insert_messages(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Add newly seen messages (MESSAGE_COLUMNS tuples); an id already stored is left as it is."""
        await self._db.executemany(
            "INSERT INTO messages (id, direction, number, body, device_id, sim, status, customer_id, created, "
            "created_ts, updated_ts, due_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            rows,
        )

    async def update_message_statuses(self, changes: Iterable[tuple[int, int, float]]) -> None:
        """Apply (sms id, new status, now) changes."""
        await self._db.executemany(
            "UPDATE messages SET status = ?, updated_ts = ? WHERE id = ?",
            [(status, now, sms_id) for sms_id, status, now in changes],
        )

    async def set_message_due(self, sms_id: int, due_ts: float) -> None:
        """Record when a scheduled outgoing message is due (its timetosend)."""
        await self._db.execute("UPDATE messages SET due_ts = ? WHERE id = ?", (due_ts, sms_id))

    async def mark_stuck_reported(self, ids: Iterable[int]) -> None:
        """Note that `sms.stuck` was emitted for these messages, so it is emitted once."""
        await self._db.executemany("UPDATE messages SET stuck_reported = 1 WHERE id = ?", [(i,) for i in ids])

    async def highest_sms_id(self) -> int | None:
        """The largest upstream SMS id the bridge has recorded, inbound or sent (None before any)."""
        cursor = await self._db.execute(
            "SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM messages UNION ALL SELECT MAX(sms_id) FROM recipients)")
        row = await cursor.fetchone()
        return row[0] if row else None

    async def index_text(self) -> None:
        """Build the trigram FTS5 index over message bodies and its triggers, filled from the rows stored; where
        this SQLite has no trigram tokenizer (before 3.34) the search reads rows instead, and says so in the log."""
        try:
            await self._db.execute(_TEXT_INDEX[0])
        except sqlite3.OperationalError as exc:
            log.warning("SQLite %s cannot build the text index (%s): dashboard text searches read rows instead",
                        sqlite3.sqlite_version, exc)
            return
        for statement in _TEXT_INDEX[1:]:
            await self._db.execute(statement)
