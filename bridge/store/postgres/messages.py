"""Message statements on PostgreSQL; id lists travel as one array parameter."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from bridge.store.messages import ASCII_LOWER, ASCII_UPPER, MessageOps
from bridge.store.records import Row

log = logging.getLogger(__name__)

# The body as the text search compares it (A-Z folded, nothing else), and pg_trgm's index over that expression:
# a LIKE on it reads the candidate rows from the index, then checks each.
FOLDED_BODY = f"translate(body, '{ASCII_UPPER}', '{ASCII_LOWER}')"

_OPEN = "direction = 'out' AND status IN (0, 1, 2, 3, 6)"


class PostgresMessages(MessageOps):
    """The `messages` table."""

    _db: asyncpg.Connection

    async def open_outgoing(self, since_ts: float) -> list[Row]:
        """Outgoing messages not final yet (1, 3, 2, 6, unknown) created or due since `since_ts`, oldest first."""
        return list(await self._db.fetch(
            f"SELECT id, status, created_ts, due_ts, stuck_reported FROM messages WHERE {_OPEN} AND created_ts >= $1 "
            f"UNION SELECT id, status, created_ts, due_ts, stuck_reported FROM messages "
            f"WHERE due_ts IS NOT NULL AND {_OPEN} AND due_ts >= $1 ORDER BY created_ts",
            since_ts,
        ))

    async def messages_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        """The stored rows among `ids` (every column), keyed by id."""
        rows = await self._db.fetch("SELECT * FROM messages WHERE id = ANY($1::bigint[])", list(ids))
        return {row["id"]: row for row in rows}

    async def insert_messages(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Add newly seen messages (MESSAGE_COLUMNS tuples); an id already stored is left as it is."""
        await self._db.executemany(
            "INSERT INTO messages (id, direction, number, body, device_id, sim, status, customer_id, created, "
            "created_ts, updated_ts, due_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (id) DO NOTHING",
            list(rows),
        )

    async def update_message_statuses(self, changes: Iterable[tuple[int, int, float]]) -> None:
        """Apply (sms id, new status, now) changes."""
        await self._db.executemany(
            "UPDATE messages SET status = $1, updated_ts = $2 WHERE id = $3",
            [(status, now, sms_id) for sms_id, status, now in changes],
        )

    async def set_message_due(self, sms_id: int, due_ts: float) -> None:
        """Record when a scheduled outgoing message is due (its timetosend)."""
        await self._db.execute("UPDATE messages SET due_ts = $1 WHERE id = $2", due_ts, sms_id)

    async def mark_stuck_reported(self, ids: Iterable[int]) -> None:
        """Note that `sms.stuck` was emitted for these messages, so it is emitted once."""
        await self._db.execute("UPDATE messages SET stuck_reported = 1 WHERE id = ANY($1::bigint[])", list(ids))

    async def highest_sms_id(self) -> int | None:
        """The largest upstream SMS id the bridge has recorded, inbound or sent (None before any)."""
        return await self._db.fetchval(
            "SELECT greatest((SELECT max(id) FROM messages), (SELECT max(sms_id) FROM recipients))")

    async def index_text(self) -> None:
        """Build a pg_trgm GIN index over the folded message bodies; where the extension cannot be had (not
        installed, or the bridge's role may not create it) text searches read rows instead, and the log says so."""
        try:
            async with self._db.transaction():
                await self._db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except asyncpg.PostgresError as exc:
            log.warning("PostgreSQL cannot create the pg_trgm extension (%s): dashboard text searches read rows "
                        "instead", exc)
            return
        await self._db.execute(
            f"CREATE INDEX IF NOT EXISTS messages_text ON messages USING gin ({FOLDED_BODY} gin_trgm_ops)")
