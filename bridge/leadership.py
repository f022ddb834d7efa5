"""Who polls: exactly one replica at a time, the holder of the poller lease (DESIGN section 8).

Every replica takes or renews the lease a few times per lease period; a follower that found it held tries again
the moment it is due to expire, so a leader that died is replaced within the lease of its last renewal whatever
the phase of the follower's tries, and the new leader polls at once (DESIGN: within `storage.lease` plus one
poll interval). The leader counts itself leader only until `lease` seconds after it *sent* its last successful
renewal, so it stops polling before the lease can expire on the database's clock and another replica take it.
The poll's transaction also checks the fencing token (`fence`): a leader that was paused or cut off past its
lease, and replaced, cannot commit the poll it was in the middle of. On SQLite there is one process per
database: it is always the leader.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Callable

from bridge.store import Store, StoreError, Tx
from bridge.store.leases import replica_lease

log = logging.getLogger(__name__)

POLLER_LEASE = "poller"
RENEWALS_PER_LEASE = 5  # tries per lease period: a lost renewal or two does not lose the lease


class Role(enum.StrEnum):
    """A replica's part in polling, as /healthz shows it."""

    LEADER = "leader"
    FOLLOWER = "follower"


class NotLeader(Exception):
    """This replica no longer holds the poller lease: drop the poll (the leader polls the same window)."""


class Leadership:
    """This replica's hold on the poller lease."""

    def __init__(self, store: Store, lease: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.lease = lease
        self.shared = store.shared
        self.holder = store.holder
        self._monotonic = monotonic
        self._token: int | None = None
        self._valid_until = -math.inf
        self._failing = False
        self.on_elected: Callable[[], None] | None = None
        self.elections = 0

    @property
    def is_leader(self) -> bool:
        """Whether this replica may poll now."""
        return not self.shared or (self._token is not None and self._monotonic() < self._valid_until)

    @property
    def role(self) -> Role:
        """Leader or follower, now."""
        return Role.LEADER if self.is_leader else Role.FOLLOWER

    @property
    def token(self) -> int | None:
        """The fencing token of the lease this replica holds or last held."""
        return self._token

    async def renew(self) -> bool:
        """Renew this replica's liveness and take or renew the poller lease once; whether this replica leads
        now. A database failure raises StoreError."""
        sent = self._monotonic()
        was_leader = self.is_leader
        await self._store.take_lease(replica_lease(self.holder), self.holder, self.lease)
        token = await self._store.take_lease(POLLER_LEASE, self.holder, self.lease)
        if token is None:
            if was_leader:
                log.warning("leadership: another replica holds the poller lease now; this one stops polling")
            self._valid_until = -math.inf
            return False
        changed = token != self._token
        self._token, self._valid_until = token, sent + self.lease
        if changed or not was_leader:
            self.elections += 1
            log.info("leadership: this replica (%s) leads polling now (fencing token %d)", self.holder, token)
            if self.on_elected is not None:
                self.on_elected()
        return True

    async def run(self) -> None:
        """Renew the leases until cancelled, several times per lease period, and as a follower again when the
        poller lease is due to expire; database failures are retried."""
        while True:
            pause = self.lease / RENEWALS_PER_LEASE
            try:
                if not await self.renew():
                    pause = min(pause, await self._until_expiry())
                if self._failing:
                    log.info("leadership: the database answers again")
                self._failing = False
            except StoreError as exc:
                if not self._failing:
                    log.warning("leadership: cannot reach the database to renew the poller lease (%s); "
                                "this replica stops polling once its lease runs out", exc)
                self._failing = True
            await asyncio.sleep(pause)

    async def _until_expiry(self) -> float:
        """Seconds until the poller lease another replica holds runs out, on the database's clock."""
        lease = await self._store.lease(POLLER_LEASE)
        return 0.0 if lease is None else max(0.0, lease["remaining"])

    async def fence(self, tx: Tx) -> None:
        """Inside a poll's transaction: raise NotLeader unless this replica still holds the lease it polled under."""
        if not self.shared:
            return
        if self._token is None or not await tx.holds_lease(POLLER_LEASE, self.holder, self._token):
            self._valid_until = -math.inf
            raise NotLeader(f"replica {self.holder} lost the poller lease (fencing token {self._token})")

    async def release(self) -> None:
        """Give the leases up on a clean stop, so another replica takes over at once (and takes this one's
        claimed rows)."""
        if not self.shared:
            return
        self._valid_until = -math.inf
        try:
            await self._store.release_lease(POLLER_LEASE, self.holder)
            await self._store.release_lease(replica_lease(self.holder), self.holder)
        except StoreError as exc:  # the others take over when the lease runs out instead
            log.warning("leadership: could not give up the poller lease (%s)", exc)
