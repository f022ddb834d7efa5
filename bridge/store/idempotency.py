"""Idempotency keys: the stored answer to each key for a day, and the expiry of short-lived safety state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.access import Access
from bridge.store.records import Row


class IdempotencyOps(ABC):
    """Idempotency statements inside a transaction."""

    @abstractmethod
    async def save_answers(self, answers: Iterable[tuple[str, str, str, int, str]], now: float) -> None:
        """Store final answers as (scope, key, request hash, status, response JSON); an expired key is replaced."""

    @abstractmethod
    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""

    @abstractmethod
    async def purge_expired(self, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""


class IdempotencyReads(Access):
    """Idempotency reads on the store, each in a read of its own."""

    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        async with self.reading() as tx:
            return await tx.get_answer(scope, key, since)
