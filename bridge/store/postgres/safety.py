"""Safety statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.numbers import number_readings
from bridge.store.safety import SafetyOps


class PostgresSafety(SafetyOps):
    """The `opt_outs`, `sent_log` and `cooldowns` tables."""

    _db: asyncpg.Connection

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """The numbers among `numbers` that are on the opt-out list."""
        rows = await self._db.fetch("SELECT number FROM opt_outs WHERE number = ANY($1::text[])", sorted(set(numbers)))
        return {row[0] for row in rows}

    async def set_opted_out(self, number: str, opted_out: bool, source: str, now: float) -> None:
        """Put `number` on the opt-out list (kept from its first opt-out) or take it off."""
        if opted_out:
            await self._db.execute(
                "INSERT INTO opt_outs (number, source, created_ts) VALUES ($1, $2, $3) ON CONFLICT (number) DO NOTHING",
                number, source, now,
            )
        else:
            await self._db.execute("DELETE FROM opt_outs WHERE number = $1", number)

    async def recent_sends(self, keys: Iterable[tuple[str, str]], since: float) -> dict[tuple[str, str], int]:
        """How many texts went out after `since` under each of `keys`, (number, body hash) pairs."""
        pairs = sorted(set(keys))
        rows = await self._db.fetch(
            "SELECT l.number, l.body_hash, count(*) FROM unnest($1::text[], $2::text[]) AS k (number, body_hash) "
            "JOIN sent_log l ON l.number = k.number AND l.body_hash = k.body_hash WHERE l.ts > $3 "
            "GROUP BY l.number, l.body_hash",
            [number for number, _ in pairs], [body_hash for _, body_hash in pairs], since,
        )
        return {(row[0], row[1]): row[2] for row in rows}

    async def log_sent(self, entries: Iterable[tuple[str, str]], now: float) -> None:
        """Note texts going out now as (number, body hash), for the loop guard."""
        await self._db.executemany(
            "INSERT INTO sent_log (number, body_hash, ts) VALUES ($1, $2, $3)", [(*entry, now) for entry in entries]
        )

    async def last_reply_ts(self, rule: str, number: str) -> float | None:
        """When `rule` last auto-replied to `number` (the reply cooldown), or None."""
        return await self._db.fetchval("SELECT ts FROM cooldowns WHERE rule = $1 AND number = $2", rule, number)

    async def note_reply(self, rule: str, number: str, now: float) -> None:
        """Start the reply cooldown of `rule` for `number`."""
        await self._db.execute(
            "INSERT INTO cooldowns (rule, number, ts) VALUES ($1, $2, $3) "
            "ON CONFLICT (rule, number) DO UPDATE SET ts = excluded.ts",
            rule, number, now,
        )

    async def renumber(self, region: str | None) -> None:
        """Re-key the numbers an older bridge stored as they were spelled (the schema upgrade to version 7)."""
        opt_outs = [(reading, source, ts) for number, source, ts in
                    await self._db.fetch("SELECT number, source, created_ts FROM opt_outs ORDER BY created_ts")
                    for reading in number_readings(number, region)]
        await self._db.execute("DELETE FROM opt_outs")
        await self._db.executemany(
            "INSERT INTO opt_outs (number, source, created_ts) VALUES ($1, $2, $3) ON CONFLICT (number) DO NOTHING",
            opt_outs)
        cooldowns = [(rule, reading, ts) for rule, number, ts in
                     await self._db.fetch("SELECT rule, number, ts FROM cooldowns")
                     for reading in number_readings(number, region)]
        await self._db.execute("DELETE FROM cooldowns")
        await self._db.executemany(
            "INSERT INTO cooldowns (rule, number, ts) VALUES ($1, $2, $3) "
            "ON CONFLICT (rule, number) DO UPDATE SET ts = greatest(cooldowns.ts, excluded.ts)", cooldowns)
        await self._db.executemany(
            "UPDATE sent_log SET number = $1 WHERE number = $2",
            [(number_readings(number, region)[0], number)
             for (number,) in await self._db.fetch("SELECT DISTINCT number FROM sent_log")])
