"""Lease statements on PostgreSQL, timed by the server's clock."""

from __future__ import annotations

import asyncpg

from bridge.store.leases import REPLICA_PREFIX, LeaseOps
from bridge.store.records import Row

# The wall clock now, not the transaction's start: a transaction may have waited for the write lock.
_NOW = "extract(epoch FROM clock_timestamp())::double precision"



def claimable(alias: str, holder: str) -> str:
    """SQL true for a row of `alias` no live replica but `holder` (a parameter, e.g. "$7") has claimed."""
    return (f"({alias}.claimed_by IS NULL OR {alias}.claimed_by = {holder} OR NOT EXISTS (SELECT 1 FROM leases l "
            f"WHERE l.name = '{REPLICA_PREFIX}' || {alias}.claimed_by AND l.expires_ts > {_NOW}))")


class PostgresLeases(LeaseOps):
    """The `leases` table."""

    _db: asyncpg.Connection

    async def take_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take or renew lease `name` for `holder`; its fencing token, or None while another holds it."""
        return await self._db.fetchval(
            f"INSERT INTO leases (name, holder, token, expires_ts) VALUES ($1, $2, 1, {_NOW} + $3) "
            "ON CONFLICT (name) DO UPDATE SET "
            f"token = leases.token + CASE WHEN leases.holder = excluded.holder AND leases.expires_ts > {_NOW} "
            "THEN 0 ELSE 1 END, holder = excluded.holder, expires_ts = excluded.expires_ts "
            f"WHERE leases.holder = excluded.holder OR leases.expires_ts <= {_NOW} RETURNING token",
            name, holder, ttl,
        )

    async def holds_lease(self, name: str, holder: str, token: int) -> bool:
        """Whether `holder` still holds lease `name` with fencing token `token`, unexpired."""
        return await self._db.fetchval(
            f"SELECT count(*) > 0 FROM leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires_ts > {_NOW}",
            name, holder, token,
        )

    async def release_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease `name` now."""
        await self._db.execute("UPDATE leases SET expires_ts = 0 WHERE name = $1 AND holder = $2", name, holder)

    async def lease(self, name: str) -> Row | None:
        """Lease `name` as holder, token and remaining seconds."""
        return await self._db.fetchrow(
            f"SELECT holder, token, expires_ts - {_NOW} AS remaining FROM leases WHERE name = $1", name)
