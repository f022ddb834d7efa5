"""Idempotency statements on SQLite."""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

from bridge.store.idempotency import IdempotencyOps
from bridge.store.records import Row


class SqliteIdempotency(IdempotencyOps):
    """The `idempotency` table (and the expiry of `sent_log`)."""

    _db: aiosqlite.Connection
    _holder: str

    async def save_answers(self, answers: Iterable[tuple[str, str, str, int, str]], now: float) -> None:
        """Store final answers as (scope, key, request hash, status, response JSON); an expired key is replaced."""
        await self._db.executemany(
            "INSERT INTO idempotency (scope, key, request_hash, state, status, response, created_ts) "
            "VALUES (?, ?, ?, 'done', ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET "
            "request_hash = excluded.request_hash, state = 'done', status = excluded.status, "
            "response = excluded.response, created_ts = excluded.created_ts, claimed_by = NULL",
            [(*answer, now) for answer in answers],
        )

    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        cursor = await self._db.execute(
            "SELECT request_hash, status, response FROM idempotency "
            "WHERE scope = ? AND key = ? AND state = 'done' AND created_ts >= ?",
            (scope, key, since),
        )
        return await cursor.fetchone()

    async def claim_key(self, scope: str, key: str, now: float, since: float) -> bool:
        """Mark an idempotency key running for this process; False while it runs here or its answer is final
        (a running mark left by an earlier process of this file is taken over)."""
        cursor = await self._db.execute(
            "INSERT INTO idempotency (scope, key, request_hash, state, created_ts, claimed_by) "
            "VALUES (?1, ?2, '', 'running', ?3, ?4) ON CONFLICT (scope, key) DO UPDATE SET state = 'running', "
            "request_hash = '', status = NULL, response = NULL, created_ts = excluded.created_ts, "
            "claimed_by = excluded.claimed_by WHERE (idempotency.state = 'done' AND idempotency.created_ts < ?5) "
            "OR (idempotency.state = 'running' AND idempotency.claimed_by IS NOT ?4) RETURNING 1",
            (scope, key, now, self._holder, since),
        )
        return await cursor.fetchone() is not None

    async def release_key(self, scope: str, key: str) -> None:
        """Forget this process's running mark of a key."""
        await self._db.execute(
            "DELETE FROM idempotency WHERE scope = ? AND key = ? AND state = 'running' AND claimed_by = ?",
            (scope, key, self._holder))

    async def purge_expired(self, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""
        await self._db.execute("DELETE FROM idempotency WHERE created_ts < ?", (answers_before,))
        await self._db.execute("DELETE FROM sent_log WHERE ts < ?", (sent_log_before,))
