"""Device pool statements on SQLite. Lists go through json_each so one statement serves any number of them."""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from bridge.pool import EXHAUSTED
from bridge.store.pool import COUNT_DAILY, COUNT_MONTHLY, MemberCounts, PoolOps, count_rows
from bridge.store.records import Row


class SqlitePool(PoolOps):
    """The `pool_daily`, `pool_monthly`, `pool_assignments` and `recipient_attempts` tables."""

    _db: aiosqlite.Connection

    async def lock_pool(self) -> None:
        """Nothing to do: BEGIN IMMEDIATE already runs write transactions one at a time."""

    async def pool_counts(self, day: str, month: str, numbers: Iterable[str]) -> dict[tuple[int, int], MemberCounts]:
        """Every member's counts for `day` and `month`, with the numbers among `numbers` it sent to in `month`."""
        sent = {(r[0], r[1]): r[2] for r in await (await self._db.execute(
            "SELECT device_id, sim, sent FROM pool_daily WHERE day = ?", (day,))).fetchall()}
        distinct = {(r[0], r[1]): r[2] for r in await (await self._db.execute(
            "SELECT device_id, sim, count(*) FROM pool_monthly WHERE month = ? GROUP BY device_id, sim",
            (month,))).fetchall()}
        known: dict[tuple[int, int], set[str]] = {}
        for r in await (await self._db.execute(
                "SELECT p.device_id, p.sim, p.number FROM json_each(?) AS j "
                "JOIN pool_monthly p ON p.month = ? AND p.number = j.value",
                (json.dumps(sorted(set(numbers))), month))).fetchall():
            known.setdefault((r[0], r[1]), set()).add(r[2])
        return {key: MemberCounts(sent.get(key, 0), distinct.get(key, 0), frozenset(known.get(key, ())))
                for key in sent.keys() | distinct.keys()}

    async def count_pool_sends(self, sends: Iterable[tuple[int, int, str]], day: str, month: str) -> None:
        """Count SMS handed upstream now as (device_id, sim, number)."""
        daily, monthly = count_rows(sends, day, month)
        await self._db.executemany(COUNT_DAILY, daily)
        await self._db.executemany(COUNT_MONTHLY, monthly)

    async def uncount_pool_sends(self, sends: Iterable[tuple[int, int]], day: str) -> None:
        """Take back one SMS each of `day`, as (device_id, sim)."""
        await self._db.executemany(
            "UPDATE pool_daily SET sent = max(sent - 1, 0) WHERE device_id = ? AND sim = ? AND day = ?",
            [(device, sim, day) for device, sim in sends],
        )

    async def pool_assignments(self, numbers: Iterable[str]) -> dict[str, tuple[int, int]]:
        """The member each of `numbers` was placed on last, by number."""
        cursor = await self._db.execute(
            "SELECT a.number, a.device_id, a.sim FROM json_each(?) AS j JOIN pool_assignments a ON a.number = j.value",
            (json.dumps(sorted(set(numbers))),),
        )
        return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}

    async def assign_pool(self, assignments: Iterable[tuple[str, int, int]], now: float) -> None:
        """Keep (number, device_id, sim) as where each number goes while that member is usable."""
        await self._db.executemany(
            "INSERT INTO pool_assignments (number, device_id, sim, updated_ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (number) DO UPDATE SET device_id = excluded.device_id, sim = excluded.sim, "
            "updated_ts = excluded.updated_ts",
            [(number, device, sim, now) for number, device, sim in assignments],
        )

    async def set_recipient_members(self, changes: Iterable[tuple[int, int, int]], now: float) -> None:
        """The member chosen for each recipient, as (recipient id, device_id, sim)."""
        await self._db.executemany(
            "UPDATE recipients SET device_id = ?, sim = ?, updated_ts = ? WHERE id = ?",
            [(device, sim, now, rid) for rid, device, sim in changes],
        )

    async def failover_candidates(self, statuses: Iterable[int], since: float, limit: int) -> list[Row]:
        """Submitted, pool-placed recipients without a failover whose SMS has one of `statuses`."""
        cursor = await self._db.execute(
            "SELECT r.id, r.number, r.sms_id, r.device_id, r.sim, m.status FROM messages m "
            "JOIN recipients r ON r.sms_id = m.id "
            "WHERE m.status IN (SELECT value FROM json_each(?)) AND m.created_ts > ? AND r.state = 'submitted' "
            "AND r.failovers = 0 AND r.device_id IS NOT NULL ORDER BY r.id LIMIT ?",
            (json.dumps(sorted(set(statuses))), since, limit),
        )
        return list(await cursor.fetchall())

    async def fail_over(self, changes: Iterable[tuple[int, int, int, int, int]], now: float) -> None:
        """Queue recipients again for another member, keeping the failed attempt."""
        changes = list(changes)
        await self._db.executemany(
            "INSERT INTO recipient_attempts (recipient_id, sms_id, device_id, sim, ts) VALUES (?, ?, ?, ?, ?)",
            [(rid, sms_id, device, sim, now) for rid, sms_id, device, sim, _ in changes],
        )
        await self._db.executemany(
            "UPDATE recipients SET state = 'queued', sms_id = NULL, reason = NULL, device_id = NULL, sim = NULL, "
            "failovers = failovers + 1, avoid_device = ?, avoid_sim = ?, correlation_id = ?, "
            "next_attempt_ts = ?, updated_ts = ? WHERE id = ?",
            [(device, sim, correlation, now, now, rid) for rid, _, device, sim, correlation in changes],
        )

    async def recipient_attempts(self, send_id: str) -> list[Row]:
        """Earlier attempts of a send's recipients, in order: position, sms_id, device_id, sim, status."""
        cursor = await self._db.execute(
            "SELECT r.position, a.sms_id, a.device_id, a.sim, m.status FROM recipients r "
            "JOIN recipient_attempts a ON a.recipient_id = r.id LEFT JOIN messages m ON m.id = a.sms_id "
            "WHERE r.send_id = ? ORDER BY r.position, a.id",
            (send_id,),
        )
        return list(await cursor.fetchall())

    async def pool_waiting(self) -> int:
        """Recipients queued because no pool member is usable."""
        cursor = await self._db.execute(
            "SELECT count(*) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "AND state = 'queued' AND reason = ?", (EXHAUSTED,))
        return (await cursor.fetchone())[0]
