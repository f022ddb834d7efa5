"""Safety statements on SQLite. Number lists go through json_each so one statement serves any number of them."""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from bridge.numbers import number_readings
from bridge.store.safety import SafetyOps


class SqliteSafety(SafetyOps):
    """The `opt_outs`, `sent_log` and `cooldowns` tables."""

    _db: aiosqlite.Connection

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """The numbers among `numbers` that are on the opt-out list."""
        cursor = await self._db.execute(
            "SELECT o.number FROM json_each(?) AS j JOIN opt_outs o ON o.number = j.value",
            (json.dumps(sorted(set(numbers))),),
        )
        return {row[0] for row in await cursor.fetchall()}

    async def set_opted_out(self, number: str, opted_out: bool, source: str, now: float) -> None:
        """Put `number` on the opt-out list (kept from its first opt-out) or take it off."""
        if opted_out:
            await self._db.execute(
                "INSERT INTO opt_outs (number, source, created_ts) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
                (number, source, now),
            )
        else:
            await self._db.execute("DELETE FROM opt_outs WHERE number = ?", (number,))

    async def recent_sends(self, keys: Iterable[tuple[str, str]], since: float) -> dict[tuple[str, str], int]:
        """How many texts went out after `since` under each of `keys`, (number, body hash) pairs."""
        cursor = await self._db.execute(
            "SELECT l.number, l.body_hash, count(*) FROM json_each(?) AS j JOIN sent_log l "
            "ON l.number = json_extract(j.value, '$[0]') AND l.body_hash = json_extract(j.value, '$[1]') "
            "WHERE l.ts > ? GROUP BY l.number, l.body_hash",
            (json.dumps(sorted(set(keys))), since),
        )
        return {(row[0], row[1]): row[2] for row in await cursor.fetchall()}

    async def log_sent(self, entries: Iterable[tuple[str, str]], now: float) -> None:
        """Note texts going out now as (number, body hash), for the loop guard."""
        await self._db.executemany(
            "INSERT INTO sent_log (number, body_hash, ts) VALUES (?, ?, ?)", [(*entry, now) for entry in entries]
        )

    async def last_reply_ts(self, rule: str, number: str) -> float | None:
        """When `rule` last auto-replied to `number` (the reply cooldown), or None."""
        cursor = await self._db.execute("SELECT ts FROM cooldowns WHERE rule = ? AND number = ?", (rule, number))
        row = await cursor.fetchone()
        return row[0] if row else None

    async def note_reply(self, rule: str, number: str, now: float) -> None:
        """Start the reply cooldown of `rule` for `number`."""
        await self._db.execute(
            "INSERT INTO cooldowns (rule, number, ts) VALUES (?, ?, ?) "
            "ON CONFLICT (rule, number) DO UPDATE SET ts = excluded.ts",
            (rule, number, now),
        )

    async def renumber(self, region: str | None) -> None:
        """Re-key the numbers an older bridge stored as they were spelled (the schema upgrade to version 7)."""
        cursor = await self._db.execute("SELECT number, source, created_ts FROM opt_outs ORDER BY created_ts")
        opt_outs = [(reading, source, ts) for number, source, ts in await cursor.fetchall()
                    for reading in number_readings(number, region)]
        await self._db.execute("DELETE FROM opt_outs")
        await self._db.executemany(
            "INSERT INTO opt_outs (number, source, created_ts) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
            opt_outs)
        cursor = await self._db.execute("SELECT rule, number, ts FROM cooldowns")
        cooldowns = [(rule, reading, ts) for rule, number, ts in await cursor.fetchall()
                     for reading in number_readings(number, region)]
        await self._db.execute("DELETE FROM cooldowns")
        await self._db.executemany(
            "INSERT INTO cooldowns (rule, number, ts) VALUES (?, ?, ?) "
            "ON CONFLICT (rule, number) DO UPDATE SET ts = max(cooldowns.ts, excluded.ts)", cooldowns)
        cursor = await self._db.execute("SELECT DISTINCT number FROM sent_log")
        await self._db.executemany(
            "UPDATE sent_log SET number = ? WHERE number = ?",
            [(number_readings(number, region)[0], number) for (number,) in await cursor.fetchall()])
