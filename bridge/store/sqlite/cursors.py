"""Cursor statements on SQLite."""

from __future__ import annotations

import aiosqlite

from bridge.store.cursors import CursorOps


class SqliteCursors(CursorOps):
    """Named cursors in the `cursors` table."""

    _db: aiosqlite.Connection

    async def get_cursor(self, name: str) -> str | None:
        """The stored value of a named cursor, or None before it is first set."""
        cursor = await self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,))
        row = await cursor.fetchone()
        return row[0] if row else None

    async def set_cursor(self, name: str, value: str) -> None:
        """Set a named cursor."""
        await self._db.execute(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
