"""Lease statements on SQLite (one process per file: the lease is always this process's to take)."""

from __future__ import annotations

import aiosqlite

from bridge.store.leases import LeaseOps
from bridge.store.records import Row

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


class SqliteLeases(LeaseOps):
    """The `leases` table."""

    _db: aiosqlite.Connection

    async def take_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take or renew lease `name` for `holder`; its fencing token, or None while another holds it."""
        cursor = await self._db.execute(
            f"INSERT INTO leases (name, holder, token, expires_ts) VALUES (?1, ?2, 1, {_NOW} + ?3) "
            "ON CONFLICT (name) DO UPDATE SET "
            f"token = leases.token + (leases.holder != excluded.holder OR leases.expires_ts <= {_NOW}), "
            "holder = excluded.holder, expires_ts = excluded.expires_ts "
            f"WHERE leases.holder = excluded.holder OR leases.expires_ts <= {_NOW} RETURNING token",
            (name, holder, ttl),
        )
        row = await cursor.fetchone()
        return row[0] if row else None

    async def holds_lease(self, name: str, holder: str, token: int) -> bool:
        """Whether `holder` still holds lease `name` with fencing token `token`, unexpired."""
        cursor = await self._db.execute(
            f"SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires_ts > {_NOW}",
            (name, holder, token),
        )
        return await cursor.fetchone() is not None

    async def release_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease `name` now."""
        await self._db.execute("UPDATE leases SET expires_ts = 0 WHERE name = ? AND holder = ?", (name, holder))

    async def lease(self, name: str) -> Row | None:
        """Lease `name` as holder, token and remaining seconds."""
        cursor = await self._db.execute(
            f"SELECT holder, token, expires_ts - {_NOW} AS remaining FROM leases WHERE name = ?", (name,))
        return await cursor.fetchone()
