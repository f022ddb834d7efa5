"""The outbox: one row per webhook call or contact tag an event asked for, until delivered or dead.

A lane is the rows of one kind and, for webhooks, one target. A row never attempted waits `first_delay` (the
target's delay before attempt 1) past its next_attempt_ts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.access import Access
from bridge.store.records import AttemptLog, NewDelivery, Row


class OutboxOps(ABC):
    """Outbox statements inside a transaction."""

    @abstractmethod
    async def insert_delivery(self, delivery: NewDelivery, now: float) -> None:
        """Add one outbox row, due at once."""

    @abstractmethod
    async def insert_deliveries(self, deliveries: Iterable[NewDelivery], now: float) -> None:
        """Add outbox rows, due at once, in their order (one statement for a poll's many)."""

    @abstractmethod
    async def due_deliveries(
        self, now: float, kind: str, target: str | None, first_delay: float, limit: int, exclude: Iterable[int],
    ) -> list[Row]:
        """Up to `limit` pending rows of a lane due at `now`, oldest first, with their event's `payload`:
        id, event_id, kind, target, rule, spec, attempts, payload."""

    @abstractmethod
    async def next_delivery_ts(self, kind: str, target: str | None, first_delay: float,
                               exclude: Iterable[int]) -> float | None:
        """When the next pending row of a lane falls due (rows in `exclude` left out), or None if none is pending."""

    @abstractmethod
    async def record_attempts(self, outcomes: Iterable[tuple[int, str, float, str | None, int | None]],
                              now: float) -> None:
        """Count one attempt of each outbox row and set its outcome; each outcome is
        (id, state, next_attempt_ts, last_error, last_status)."""

    @abstractmethod
    async def log_attempts(self, attempts: Iterable[AttemptLog], now: float) -> None:
        """Keep the history of delivery attempts (the outbox row holds only the last)."""

    @abstractmethod
    async def disable_target(self, name: str, reason: str, now: float) -> bool:
        """Mark a webhook target disabled; False when it already was."""

    @abstractmethod
    async def disabled_targets(self) -> list[Row]:
        """The disabled webhook targets: name, reason, disabled_ts."""

    @abstractmethod
    async def pending_deliveries_by_target(self) -> list[Row]:
        """How many rows are pending per kind and target: kind, target, count."""

    @abstractmethod
    async def list_deliveries(self, failed_only: bool = False) -> list[Row]:
        """Outbox rows with their event type, oldest first; `failed_only`: dead rows and pending ones that failed.
        Columns: id, event_id, event_type, kind, target, rule, state, attempts, next_attempt_ts, last_error,
        last_status, created_ts, updated_ts."""

    @abstractmethod
    async def delivery_states(self, ids: Iterable[int]) -> list[Row]:
        """The state of each existing outbox row among `ids`: id, state."""

    @abstractmethod
    async def replay_deliveries(self, now: float, ids: Iterable[int] | None = None,
                                target: str | None = None) -> tuple[list[int], list[str]]:
        """Re-queue failed rows (dead, or pending after a failed attempt: what `list_deliveries(failed_only=True)`
        lists; those of `ids`, else all; only `target`'s when given) as never attempted and due at `now`, and
        re-enable the webhook targets they go to (and `target`). Returns (row ids in order, targets enabled)."""


class OutboxReads(Access):
    """Outbox reads and changes on the store, each in a transaction of its own."""

    async def due_deliveries(
        self, now: float, kind: str, target: str | None, first_delay: float, limit: int, exclude: Iterable[int],
    ) -> list[Row]:
        """Up to `limit` pending rows of a lane due at `now`, oldest first, with their event's `payload`."""
        async with self.reading() as tx:
            return await tx.due_deliveries(now, kind, target, first_delay, limit, exclude)

    async def next_delivery_ts(self, kind: str, target: str | None, first_delay: float,
                               exclude: Iterable[int]) -> float | None:
        """When the next pending row of a lane falls due (rows in `exclude` left out), or None if none is pending."""
        async with self.reading() as tx:
            return await tx.next_delivery_ts(kind, target, first_delay, exclude)

    async def disabled_targets(self) -> list[Row]:
        """The disabled webhook targets: name, reason, disabled_ts."""
        async with self.reading() as tx:
            return await tx.disabled_targets()

    async def pending_deliveries_by_target(self) -> list[Row]:
        """How many rows are pending per kind and target: kind, target, count."""
        async with self.reading() as tx:
            return await tx.pending_deliveries_by_target()

    async def list_deliveries(self, failed_only: bool = False) -> list[Row]:
        """Outbox rows with their event type, oldest first; `failed_only`: dead rows and pending ones that failed."""
        async with self.reading() as tx:
            return await tx.list_deliveries(failed_only)

    async def delivery_states(self, ids: Iterable[int]) -> list[Row]:
        """The state of each existing outbox row among `ids`: id, state."""
        async with self.reading() as tx:
            return await tx.delivery_states(ids)

    async def replay_deliveries(self, now: float, ids: Iterable[int] | None = None,
                                target: str | None = None) -> tuple[list[int], list[str]]:
        """Re-queue failed rows and re-enable their targets, in one transaction (see `OutboxOps.replay_deliveries`)."""
        async with self.transaction() as tx:
            return await tx.replay_deliveries(now, ids, target)
