"""Idempotency statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.idempotency import IdempotencyOps
from bridge.store.records import Row


class PostgresIdempotency(IdempotencyOps):
    """The `idempotency` table (and the expiry of `sent_log`)."""

    _db: asyncpg.Connection

    async def save_answers(self, answers: Iterable[tuple[str, str, str, int, str]], now: float) -> None:
        """Store final answers as (scope, key, request hash, status, response JSON); an expired key is replaced."""
        await self._db.executemany(
            "INSERT INTO idempotency (scope, key, request_hash, state, status, response, created_ts) "
            "VALUES ($1, $2, $3, 'done', $4, $5, $6) ON CONFLICT (scope, key) DO UPDATE SET "
            "request_hash = excluded.request_hash, state = 'done', status = excluded.status, "
            "response = excluded.response, created_ts = excluded.created_ts",
            [(*answer, now) for answer in answers],
        )

    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        return await self._db.fetchrow(
            "SELECT request_hash, status, response FROM idempotency "
            "WHERE scope = $1 AND key = $2 AND state = 'done' AND created_ts >= $3",
            scope, key, since,
        )

    async def purge_expired(self, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""
        await self._db.execute("DELETE FROM idempotency WHERE created_ts < $1", answers_before)
        await self._db.execute("DELETE FROM sent_log WHERE ts < $1", sent_log_before)
