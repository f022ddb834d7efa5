"""Cursor statements on PostgreSQL."""

from __future__ import annotations

import asyncpg

from bridge.store.cursors import CursorOps


class PostgresCursors(CursorOps):
    """Named cursors in the `cursors` table."""

    _db: asyncpg.Connection

    async def get_cursor(self, name: str) -> str | None:
        """The stored value of a named cursor, or None before it is first set."""
        return await self._db.fetchval("SELECT value FROM cursors WHERE name = $1", name)

    async def set_cursor(self, name: str, value: str) -> None:
        """Set a named cursor."""
        await self._db.execute(
            "INSERT INTO cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            name, value,
        )
