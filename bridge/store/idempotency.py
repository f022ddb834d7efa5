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
    async def claim_key(self, scope: str, key: str, now: float, since: float) -> bool:
        """Mark an idempotency key running for this replica; False while another live replica runs it or its
        answer (stored after `since`) is final. A running key of a stopped replica is taken over."""

    @abstractmethod
    async def release_key(self, scope: str, key: str) -> None:
        """Forget this replica's running mark of a key whose request ended without an answer to keep."""

    @abstractmethod
    async def purge_expired(self, answers_before: float, sent_log_before: float) -> None:
        """Forget idempotency keys and loop-guard entries older than the given times."""


class IdempotencyReads(Access):
    """Idempotency reads and marks on the store, each in a transaction of its own."""

    async def claim_key(self, scope: str, key: str, now: float, since: float) -> bool:
        """Mark an idempotency key running for this replica (see `IdempotencyOps.claim_key`)."""
        async with self.transaction() as tx:
            return await tx.claim_key(scope, key, now, since)

    async def release_key(self, scope: str, key: str) -> None:
        """Forget this replica's running mark of a key."""
        async with self.transaction() as tx:
            await tx.release_key(scope, key)

    async def get_answer(self, scope: str, key: str, since: float) -> Row | None:
        """The stored answer (request_hash, status, response) to an idempotency key used after `since`, or None."""
        async with self.reading() as tx:
            return await tx.get_answer(scope, key, since)
