"""The poller lease across replicas: one leader at a time, takeover after expiry, and the fencing token."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fake_clock import FakeClock
from waiting import eventually

from bridge.leadership import Leadership, NotLeader, Role
from bridge.store import SqliteStore, Store
from bridge.store.leases import replica_lease


async def lease_expired(store: Store) -> bool:
    """True once the poller lease has expired on the database's clock."""
    lease = await store.lease("poller")
    return lease is not None and lease["remaining"] <= 0


async def test_only_one_replica_leads(replicas: tuple[Store, Store]) -> None:
    """The first replica to take the lease leads; the second stays a follower while the lease is renewed."""
    a, b = Leadership(replicas[0], 5.0), Leadership(replicas[1], 5.0)
    assert await a.renew() and not await b.renew()
    assert (a.role, b.role) == (Role.LEADER, Role.FOLLOWER)
    assert await a.renew() and not await b.renew()


async def test_a_follower_takes_over_an_expired_lease_with_a_larger_token(replicas: tuple[Store, Store]) -> None:
    """Once the leader stops renewing, the lease expires on the database's clock and a follower takes it with a
    larger fencing token."""
    a, b = Leadership(replicas[0], 0.2), Leadership(replicas[1], 0.2)
    assert await a.renew()
    first = a.token
    await eventually(lambda: lease_expired(replicas[1]), what="the lease to expire", timeout=5)
    assert await b.renew() and b.token is not None and first is not None and b.token > first


async def test_a_follower_takes_the_lease_the_moment_it_expires(replicas: tuple[Store, Store]) -> None:
    """A follower that found the lease held tries again when it is due to expire, not a renewal period later:
    when the leader's renewals stop right after the follower's try, the follower leads within moments of the
    lease running out."""
    lease = 2.0
    a, b = Leadership(replicas[0], lease), Leadership(replicas[1], lease)
    assert await a.renew()
    following = asyncio.create_task(b.run())
    try:
        await eventually(lambda: replicas[0].lease(replica_lease(b.holder)), what="the follower's first try")
        assert await a.renew()  # the leader's last renewal, just after the follower's try
        last_renewal = time.monotonic()
        await eventually(lambda: b.is_leader, what="the follower to lead", timeout=2 * lease, interval=0.005)
        assert time.monotonic() - last_renewal < lease + 0.1
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


async def test_a_replaced_leader_cannot_commit_its_poll(replicas: tuple[Store, Store]) -> None:
    """A leader paused past its lease and replaced is refused by the fence inside its poll's transaction, and the
    transaction writes nothing."""
    clock = FakeClock(start=1000.0)  # monotonic: the database's own clock still runs
    a, b = Leadership(replicas[0], 0.2, monotonic=clock), Leadership(replicas[1], 0.2)
    assert await a.renew()
    await eventually(lambda: lease_expired(replicas[1]), what="the lease to expire", timeout=5)
    assert await b.renew()
    with pytest.raises(NotLeader):
        async with replicas[0].transaction() as tx:
            await tx.set_cursor("poll", "from the old leader")
            await a.fence(tx)
    assert await replicas[0].get_cursor("poll") is None and not a.is_leader


async def test_a_leader_counts_itself_leader_only_for_the_lease_after_it_asked(replicas: tuple[Store, Store]) -> None:
    """A leader whose renewals stop stops leading `lease` seconds after it sent the last one, by its own clock."""
    clock = FakeClock(start=1000.0)  # monotonic: the database's own clock still runs
    a = Leadership(replicas[0], 10.0, monotonic=clock)
    assert await a.renew()
    clock.advance(9.9)
    assert a.is_leader
    clock.advance(0.2)
    assert not a.is_leader


async def test_a_released_lease_is_taken_at_once(replicas: tuple[Store, Store]) -> None:
    """A leader stopping cleanly gives the lease up, and a follower takes it without waiting for expiry."""
    a, b = Leadership(replicas[0], 60.0), Leadership(replicas[1], 60.0)
    assert await a.renew()
    await a.release()
    assert await b.renew() and not a.is_leader


async def test_on_sqlite_the_one_process_always_leads(tmp_path: Path) -> None:
    """On SQLite (one process per file) the bridge is the leader and the fence lets every poll through."""
    store = await SqliteStore.open(tmp_path / "bridge.db")
    try:
        leadership = Leadership(store, 15.0)
        assert leadership.role == Role.LEADER
        async with store.transaction() as tx:
            await leadership.fence(tx)
    finally:
        await store.close()
