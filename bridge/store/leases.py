"""Leases: a named role (the poller) held by one replica until it expires, with a fencing token.

Expiry is read on the database's clock, the one clock every replica shares. The token grows each time the
lease changes hands, so a write checked against it (`holds_lease`) is refused to a holder that was replaced
while it was paused or cut off, even if it does not know yet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from bridge.store.access import Access
from bridge.store.records import Row

# A replica is alive while its lease `replica:NAME` lasts: rows it claimed are its own until then.
REPLICA_PREFIX = "replica:"


def replica_lease(holder: str) -> str:
    """The name of the lease that says replica `holder` is alive."""
    return REPLICA_PREFIX + holder


class LeaseOps(ABC):
    """Lease statements inside a transaction."""

    @abstractmethod
    async def take_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take or renew lease `name` for `holder` for `ttl` seconds if it is free, expired or `holder`'s already;
        the fencing token held (a larger one whenever the lease changed hands), or None while another holds it."""

    @abstractmethod
    async def holds_lease(self, name: str, holder: str, token: int) -> bool:
        """Whether `holder` still holds lease `name` with fencing token `token`, unexpired."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease `name` now, so another can take it at once (nothing when it is not `holder`'s)."""

    @abstractmethod
    async def lease(self, name: str) -> Row | None:
        """Lease `name` as holder, token and `remaining` seconds (negative once expired), or None if never taken."""


class LeaseReads(Access):
    """Lease changes and reads on the store, each in a transaction of its own."""

    async def take_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take or renew lease `name` (see `LeaseOps.take_lease`)."""
        async with self.transaction() as tx:
            return await tx.take_lease(name, holder, ttl)

    async def release_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease `name` now."""
        async with self.transaction() as tx:
            await tx.release_lease(name, holder)

    async def lease(self, name: str) -> Row | None:
        """Lease `name` as holder, token and remaining seconds, or None if never taken."""
        async with self.reading() as tx:
            return await tx.lease(name)
