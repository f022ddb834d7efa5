"""Idempotency statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.idempotency import IdempotencyOps
from bridge.store.postgres.leases import claimable
from bridge.store.records import Row


class PostgresIdempotency(IdempotencyOps):
    """The `idempotency` table (and the expiry of `sent_log`)."""

    _db: asyncpg.Connection
    _holder: str

    async def save_answers(self, answers: Iterable[tuple[str, str, str, int, str]], now: float) -> None:
        """Store final answers as (scope, key, request hash, status, response JSON); an expired key is replaced."""
        await self._db.executemany(
            "INSERT INTO idempotency (scope, key, request_hash, state, status, response, created_ts) "
            "VALUES ($1, $2, $3, 'done', $4, $5, $6) ON CONFLICT (scope, key) DO UPDATE SET "
            "request_hash = excluded.request_hash, state = 'done', status = excluded.status, "
            "response = excluded.response, created_ts = excluded.created_ts, claimed_by = NULL",
            [(*answer, now) for answer in answers],
        )

    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        return await self._db.fetchrow(
            "SELECT request_hash, status, response FROM idempotency "
            "WHERE scope = $1 AND key = $2 AND state = 'done' AND created_ts >= $3",
            scope, key, since,
        )

    async def claim_key(self, scope: str, key: str, now: float, since: float) -> bool:
        """Mark an idempotency key running for this replica; False while another runs it or its answer is final."""
        return await self._db.fetchval(
            "INSERT INTO idempotency (scope, key, request_hash, state, created_ts, claimed_by) "
            "VALUES ($1, $2, '', 'running', $3, $4) ON CONFLICT (scope, key) DO UPDATE SET state = 'running', "
            "request_hash = '', status = NULL, response = NULL, created_ts = excluded.created_ts, "
            "claimed_by = excluded.claimed_by WHERE (idempotency.state = 'done' AND idempotency.created_ts < $5) "
            "OR (idempotency.state = 'running' AND idempotency.claimed_by IS DISTINCT FROM $4 "
            f"AND {claimable('idempotency', 'NULL')}) RETURNING true",
            scope, key, now, self._holder, since,
        ) is not None

    async def release_key(self, scope: str, key: str) -> None:
        """Forget this replica's running mark of a key."""
        await self._db.execute(
            "DELETE FROM idempotency WHERE scope = $1 AND key = $2 AND state = 'running' AND claimed_by = $3",
            scope, key, self._holder)

    async def purge_expired(self, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""
        await self._db.execute("DELETE FROM idempotency WHERE created_ts < $1", answers_before)
        await self._db.execute("DELETE FROM sent_log WHERE ts < $1", sent_log_before)
