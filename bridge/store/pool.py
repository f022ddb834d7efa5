"""Device pool state: per member the SMS handed upstream each local day and the distinct recipients of each
calendar month, the sticky recipients' members, and every earlier attempt of a recipient that failed over.

Members are (device_id, sim) pairs; days (`2026-11-24`) and months (`2026-11`) are the account zone's, computed
by the caller, so counts are the same for every replica and survive restarts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.store.access import Access
from bridge.store.records import Row


@dataclass(frozen=True, slots=True)
class MemberCounts:
    """A member's counts: SMS handed upstream on `day`, distinct recipients in `month`, and which of the numbers
    asked about are among them."""

    sent_today: int = 0
    recipients_this_month: int = 0
    known_numbers: frozenset[str] = frozenset()


# An SMS handed upstream on a member, in SQLite's `?` spelling (PostgreSQL's backend numbers the placeholders).
COUNT_DAILY = ("INSERT INTO pool_daily (device_id, sim, day, sent) VALUES (?, ?, ?, 1) "
               "ON CONFLICT (device_id, sim, day) DO UPDATE SET sent = pool_daily.sent + 1")
COUNT_MONTHLY = "INSERT INTO pool_monthly (device_id, sim, month, number) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"


def count_rows(sends: Iterable[tuple[int, int, str]], day: str, month: str) -> tuple[list[tuple], list[tuple]]:
    """COUNT_DAILY's and COUNT_MONTHLY's parameters for SMS handed upstream as (device_id, sim, number)."""
    sends = list(sends)
    return [(device, sim, day) for device, sim, _ in sends], [(device, sim, month, n) for device, sim, n in sends]


class PoolOps(ABC):
    """Pool statements inside a transaction."""

    @abstractmethod
    async def lock_pool(self) -> None:
        """Hold the pool's counts for this transaction, so that replicas placing sends at once never both take
        a member's last free place (a no-op where transactions already run one at a time)."""

    @abstractmethod
    async def pool_counts(self, day: str, month: str, numbers: Iterable[str]) -> dict[tuple[int, int], MemberCounts]:
        """Every member's counts for `day` and `month`, with the numbers among `numbers` it sent to in `month`."""

    @abstractmethod
    async def count_pool_sends(self, sends: Iterable[tuple[int, int, str]], day: str, month: str) -> None:
        """Count SMS handed upstream now as (device_id, sim, number): one more for the day, the number for the
        month."""

    @abstractmethod
    async def uncount_pool_sends(self, sends: Iterable[tuple[int, int]], day: str) -> None:
        """Take back one SMS each of `day`, as (device_id, sim), for calls the upstream did not apply."""

    @abstractmethod
    async def pool_assignments(self, numbers: Iterable[str]) -> dict[str, tuple[int, int]]:
        """The member each of `numbers` was placed on last, by number."""

    @abstractmethod
    async def assign_pool(self, assignments: Iterable[tuple[str, int, int]], now: float) -> None:
        """Keep (number, device_id, sim) as where each number goes while that member is usable."""

    @abstractmethod
    async def set_recipient_members(self, changes: Iterable[tuple[int, int, int]], now: float) -> None:
        """The member chosen for each recipient, as (recipient id, device_id, sim)."""

    @abstractmethod
    async def failover_candidates(self, statuses: Iterable[int], since: float, limit: int) -> list[Row]:
        """Up to `limit` submitted recipients without a failover yet whose SMS, created after `since`, has one of
        `statuses`, placed by the pool: id, number, sms_id, device_id, sim, status."""

    @abstractmethod
    async def fail_over(self, changes: Iterable[tuple[int, int, int, int, int]], now: float) -> None:
        """Queue recipients again for another member, as (recipient id, failed sms id, its device_id, its sim,
        a new correlation id): the failed attempt is kept and its member avoided."""

    @abstractmethod
    async def recipient_attempts(self, send_id: str) -> list[Row]:
        """Earlier attempts of a send's recipients, in order: position, sms_id, device_id, sim, status."""

    @abstractmethod
    async def pool_waiting(self) -> int:
        """Recipients queued because no pool member is usable."""


class PoolReads(Access):
    """Pool reads on the store, each in a read of its own."""

    async def pool_counts(self, day: str, month: str, numbers: Iterable[str] = ()
                          ) -> dict[tuple[int, int], MemberCounts]:
        """Every member's counts for `day` and `month` (see `PoolOps.pool_counts`)."""
        async with self.reading() as tx:
            return await tx.pool_counts(day, month, numbers)

    async def recipient_attempts(self, send_id: str) -> list[Row]:
        """Earlier attempts of a send's recipients, in order: position, sms_id, device_id, sim, status."""
        async with self.reading() as tx:
            return await tx.recipient_attempts(send_id)

    async def pool_waiting(self) -> int:
        """Recipients queued because no pool member is usable."""
        async with self.reading() as tx:
            return await tx.pool_waiting()
