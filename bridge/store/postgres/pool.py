"""Device pool statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.pool import EXHAUSTED
from bridge.store.pool import COUNT_DAILY, COUNT_MONTHLY, MemberCounts, PoolOps, count_rows
from bridge.store.postgres.dialect import numbered
from bridge.store.records import Row

_COUNT_DAILY, _COUNT_MONTHLY = numbered(COUNT_DAILY), numbered(COUNT_MONTHLY)


class PostgresPool(PoolOps):
    """The `pool_daily`, `pool_monthly`, `pool_assignments` and `recipient_attempts` tables."""

    _db: asyncpg.Connection

    async def lock_pool(self) -> None:
        """Nothing to do: every write transaction already holds the store's write lock."""

    async def pool_counts(self, day: str, month: str, numbers: Iterable[str]) -> dict[tuple[int, int], MemberCounts]:
        """Every member's counts for `day` and `month`, with the numbers among `numbers` it sent to in `month`."""
        sent = {(r[0], r[1]): r[2] for r in await self._db.fetch(
            "SELECT device_id, sim, sent FROM pool_daily WHERE day = $1", day)}
        distinct = {(r[0], r[1]): r[2] for r in await self._db.fetch(
            "SELECT device_id, sim, count(*) FROM pool_monthly WHERE month = $1 GROUP BY device_id, sim", month)}
        known: dict[tuple[int, int], set[str]] = {}
        for r in await self._db.fetch(
                "SELECT device_id, sim, number FROM pool_monthly WHERE month = $1 AND number = ANY($2::text[])",
                month, sorted(set(numbers))):
            known.setdefault((r[0], r[1]), set()).add(r[2])
        return {key: MemberCounts(sent.get(key, 0), distinct.get(key, 0), frozenset(known.get(key, ())))
                for key in sent.keys() | distinct.keys()}

    async def count_pool_sends(self, sends: Iterable[tuple[int, int, str]], day: str, month: str) -> None:
        """Count SMS handed upstream now as (device_id, sim, number)."""
        daily, monthly = count_rows(sends, day, month)
        await self._db.executemany(_COUNT_DAILY, daily)
        await self._db.executemany(_COUNT_MONTHLY, monthly)

    async def uncount_pool_sends(self, sends: Iterable[tuple[int, int]], day: str) -> None:
        """Take back one SMS each of `day`, as (device_id, sim)."""
        await self._db.executemany(
            "UPDATE pool_daily SET sent = greatest(sent - 1, 0) WHERE device_id = $1 AND sim = $2 AND day = $3",
            [(device, sim, day) for device, sim in sends],
        )

    async def pool_assignments(self, numbers: Iterable[str]) -> dict[str, tuple[int, int]]:
        """The member each of `numbers` was placed on last, by number."""
        rows = await self._db.fetch(
            "SELECT number, device_id, sim FROM pool_assignments WHERE number = ANY($1::text[])", sorted(set(numbers)))
        return {row[0]: (row[1], row[2]) for row in rows}

    async def assign_pool(self, assignments: Iterable[tuple[str, int, int]], now: float) -> None:
        """Keep (number, device_id, sim) as where each number goes while that member is usable."""
        await self._db.executemany(
            "INSERT INTO pool_assignments (number, device_id, sim, updated_ts) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (number) DO UPDATE SET device_id = excluded.device_id, sim = excluded.sim, "
            "updated_ts = excluded.updated_ts",
            [(number, device, sim, now) for number, device, sim in assignments],
        )

    async def set_recipient_members(self, changes: Iterable[tuple[int, int, int]], now: float) -> None:
        """The member chosen for each recipient, as (recipient id, device_id, sim)."""
        await self._db.executemany(
            "UPDATE recipients SET device_id = $1, sim = $2, updated_ts = $3 WHERE id = $4",
            [(device, sim, now, rid) for rid, device, sim in changes],
        )

    async def failover_candidates(self, statuses: Iterable[int], since: float, limit: int) -> list[Row]:
        """Submitted, pool-placed recipients without a failover whose SMS has one of `statuses`."""
        return list(await self._db.fetch(
            "SELECT r.id, r.number, r.sms_id, r.device_id, r.sim, m.status FROM messages m "
            "JOIN recipients r ON r.sms_id = m.id "
            "WHERE m.status = ANY($1::bigint[]) AND m.created_ts > $2 AND r.state = 'submitted' "
            "AND r.failovers = 0 AND r.device_id IS NOT NULL ORDER BY r.id LIMIT $3",
            sorted(set(statuses)), since, limit,
        ))

    async def fail_over(self, changes: Iterable[tuple[int, int, int, int, int]], now: float) -> None:
        """Queue recipients again for another member, keeping the failed attempt."""
        changes = list(changes)
        await self._db.executemany(
            "INSERT INTO recipient_attempts (recipient_id, sms_id, device_id, sim, ts) VALUES ($1, $2, $3, $4, $5)",
            [(rid, sms_id, device, sim, now) for rid, sms_id, device, sim, _ in changes],
        )
        await self._db.executemany(
            "UPDATE recipients SET state = 'queued', sms_id = NULL, reason = NULL, device_id = NULL, sim = NULL, "
            "failovers = failovers + 1, avoid_device = $1, avoid_sim = $2, correlation_id = $3, "
            "next_attempt_ts = $4, updated_ts = $4 WHERE id = $5",
            [(device, sim, correlation, now, rid) for rid, _, device, sim, correlation in changes],
        )

    async def recipient_attempts(self, send_id: str) -> list[Row]:
        """Earlier attempts of a send's recipients, in order: position, sms_id, device_id, sim, status."""
        return list(await self._db.fetch(
            "SELECT r.position, a.sms_id, a.device_id, a.sim, m.status FROM recipients r "
            "JOIN recipient_attempts a ON a.recipient_id = r.id LEFT JOIN messages m ON m.id = a.sms_id "
            "WHERE r.send_id = $1 ORDER BY r.position, a.id",
            send_id,
        ))

    async def pool_waiting(self) -> int:
        """Recipients queued because no pool member is usable."""
        return await self._db.fetchval(
            "SELECT count(*) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "AND state = 'queued' AND reason = $1", EXHAUSTED)
