"""PostgreSQL backend: an asyncpg pool on a server any number of replicas share.

A write transaction takes one transaction-level advisory lock first, so writers run one at a time across every
replica, as SQLite's `BEGIN IMMEDIATE` makes them within one file: every argument the bridge makes about a
transaction seeing the state the last one left holds unchanged. Write transactions are a few statements and
never wait on the upstream or a webhook; the replicas work in parallel on those calls, which is where the time
goes. A replica that stops inside one (paused, frozen, cut off) would hold every other replica's writes, lease
renewals included, for as long as it stays stopped: a writer kept waiting ends the session holding the lock once
that session has not moved for a lease, by when the stopped replica's leases have run out too. (The server's own
idle_in_transaction_session_timeout would not do: asyncpg prepares a statement with Flush, not Sync, so a client
stopped between the two leaves its session "active".) Reads take no lock. Migrations run under a lock of their
own, so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bridge.store.base import Store, Tx, replica_name
from bridge.store.errors import SchemaTooNew, StoreError, StoreRejected, StoreUnavailable
from bridge.store.migrations import MIGRATIONS, SCHEMA_VERSION, for_postgres, statements, upgrade_rows
from bridge.store.postgres.cursors import PostgresCursors
from bridge.store.postgres.dialect import numbered
from bridge.store.postgres.devices import PostgresDevices
from bridge.store.postgres.events import PostgresEvents
from bridge.store.postgres.idempotency import PostgresIdempotency
from bridge.store.messages import INDEXED_TERM_LENGTH, contains_pattern
from bridge.store.postgres.messages import FOLDED_BODY, PostgresMessages
from bridge.store.postgres.leases import PostgresLeases
from bridge.store.postgres.outbox import PostgresOutbox
from bridge.store.postgres.pool import PostgresPool
from bridge.store.postgres.safety import PostgresSafety
from bridge.store.postgres.sends import PostgresSends
from bridge.store.records import Row

log = logging.getLogger(__name__)

# Advisory lock keys (one 64-bit space per database); the first half spells "sms-brdg".
WRITE_LOCK = 0x736D732D62726467
MIGRATE_LOCK = WRITE_LOCK + 1

POOL_SIZE = 4
DEFAULT_LEASE = 15.0  # seconds, as storage.lease defaults
STALL_CHECKS_PER_LEASE = 5  # a writer kept waiting this long (a fraction of the lease) looks at the lock's holder
_TAKE_WRITE_LOCK = "SELECT pg_advisory_xact_lock($1)"
# The session holding the write lock ($1, $2: the key's halves), how long it has been in its state, and whether
# it was ended now, having stood still for $3 seconds (CASE: PostgreSQL's AND does not promise an order). A
# session still in the statement that took the lock has only just got it: its state dates from its wait.
_END_STALLED_WRITER = (
    "SELECT a.pid, extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS still, "
    "CASE WHEN clock_timestamp() - a.state_change >= make_interval(secs => $3) "
    "THEN pg_terminate_backend(a.pid) ELSE false END AS ended "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 AND NOT (a.state = 'active' AND a.query = $4)"
)
# Failures that pass: the server restarting, the network, too many clients, a conflict to retry, a session the
# server ended (asyncpg may find its protocol mid-way when it reads the server's last error: InternalClientError).
_PASSING = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.SerializationError,
            asyncpg.DeadlockDetectedError, asyncpg.AdminShutdownError, asyncpg.OperatorInterventionError,
            asyncpg.InternalClientError)
# A value the server cannot hold: out of range, not valid text, a NUL in a text.
_REJECTED = (asyncpg.DataError, OverflowError, UnicodeEncodeError)


class PostgresTx(PostgresCursors, PostgresMessages, PostgresEvents, PostgresDevices, PostgresSafety,
                 PostgresIdempotency, PostgresSends, PostgresOutbox, PostgresPool, PostgresLeases, Tx):
    """The store's statements on one pooled connection, inside the transaction (or read) that holds it, for
    the replica `holder` (the name its claims carry)."""

    def __init__(self, db: asyncpg.Connection, holder: str) -> None:
        self._db = db
        self._holder = holder

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one PostgreSQL statement ($1, $2… placeholders)."""
        await self._db.execute(sql, *params)

    async def rows(self, sql: str, *params: Any) -> list[Row]:
        """Rows of one PostgreSQL query."""
        return list(await self._db.fetch(sql, *params))


class PostgresStore(Store):
    """The bridge's PostgreSQL database; open with `PostgresStore.open`, close with `close`."""

    shared = True

    def __init__(self, pool: asyncpg.Pool, where: str, lease: float = DEFAULT_LEASE) -> None:
        self._pool = pool
        self._lease = lease
        self.holder = replica_name()
        self._lock = asyncio.Lock()  # one writer per process, as on SQLite; the advisory lock does it across them
        self.where = where

    @classmethod
    async def open(cls, url: str, *, lease: float = DEFAULT_LEASE, default_region: str | None = None
                   ) -> PostgresStore:
        """Connect to the server at `url` and create or migrate the schema; numbers an older bridge stored
        without a country code are read in `default_region` (gateway.default_region). A replica stopped inside a
        write transaction for `lease` seconds (storage.lease) has its session ended by this one when it waits."""
        where = postgres_where(url)
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=POOL_SIZE, command_timeout=60,
                                             init=_hold_any_text)
        except (*_PASSING, asyncpg.PostgresError, ValueError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {where}: {_reason(exc)}") from None
        store = cls(pool, where, lease)
        try:
            await store._migrate(default_region)
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection; committed work is on the server."""
        await self._pool.close()

    async def _migrate(self, region: str | None) -> None:
        try:
            async with self._pool.acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
                await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                current = await db.fetchval("SELECT max(version) FROM schema_version") or 0
                if current > SCHEMA_VERSION:
                    raise SchemaTooNew(
                        f"{self.where}: database schema version {current} is newer than this bridge "
                        f"understands ({SCHEMA_VERSION}); upgrade sms-bridge"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in statements(MIGRATIONS[version - 1]):
                        await db.execute(for_postgres(statement))
                    await upgrade_rows(PostgresTx(db, self.holder), version, region)
                    await db.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        except (*_PASSING, *_REJECTED, asyncpg.PostgresError) as exc:
            raise self._error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """Run the block as one write transaction, after every other replica's; failures raise a StoreError."""
        async with self._lock:
            try:
                async with self._pool.acquire() as db, db.transaction():
                    await self._lock_writes(db)
                    yield PostgresTx(db, self.holder)
            except (*_PASSING, *_REJECTED, asyncpg.PostgresError) as exc:
                raise self._error(exc) from exc

    async def _lock_writes(self, db: asyncpg.Connection) -> None:
        """Take the write lock on `db`, ending meanwhile a holder that stands still for a lease."""
        locking = asyncio.ensure_future(db.execute(_TAKE_WRITE_LOCK, WRITE_LOCK))
        try:
            wait = self._lease / STALL_CHECKS_PER_LEASE
            while not (await asyncio.wait([locking], timeout=wait))[0]:
                wait = await self._end_stalled_writer()
        finally:
            if not locking.done():  # cancelled: asyncpg cancels the statement on the server
                locking.cancel()
                await asyncio.gather(locking, return_exceptions=True)
        locking.result()

    async def _end_stalled_writer(self) -> float:
        """End the session holding the write lock if it has stood still for a lease (its replica stopped inside
        the transaction); the seconds to wait before looking again."""
        soon = self._lease / STALL_CHECKS_PER_LEASE
        try:
            async with self._pool.acquire() as db:
                holder = await db.fetchrow(_END_STALLED_WRITER, WRITE_LOCK >> 32, WRITE_LOCK & 0xFFFFFFFF,
                                           self._lease, _TAKE_WRITE_LOCK)
        except asyncpg.InsufficientPrivilegeError as exc:  # another role's session: wait for it, as before
            log.warning("store: cannot end the PostgreSQL session holding the write lock (%s)", _reason(exc))
            return self._lease
        if holder is None or holder["still"] is None:  # the lock just changed hands, or its holder is not visible
            return soon
        if holder["ended"]:
            log.warning("store: ended PostgreSQL session %d, which held the write lock without a move for %.1fs "
                        "(its replica stopped inside a transaction) and so held up every replica's writes",
                        holder["pid"], holder["still"])
            return soon
        return max(self._lease - holder["still"], 0.01)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Tx]:
        """Give a pooled connection for reads; each statement sees what was committed when it started."""
        try:
            async with self._pool.acquire() as db:
                yield PostgresTx(db, self.holder)
        except (*_PASSING, *_REJECTED, asyncpg.PostgresError) as exc:
            raise self._error(exc) from exc

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Rows of one read query; `?` placeholders, as on SQLite, are numbered for PostgreSQL."""
        async with self.reading() as tx:
            return await tx.rows(numbered(sql), *params)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of one read query, or None."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    def text_contains(self, term: str) -> tuple[str, list[Any]]:
        """The body, A-Z folded, contains `term` (folded alike)."""
        return f"{FOLDED_BODY} LIKE ? ESCAPE '\\'", [contains_pattern(term)]

    async def text_indexed(self, term: str, cap: int) -> tuple[str, list[Any]] | None:
        """The same condition, which the planner answers from the pg_trgm index (or by walking the newest rows,
        for a term it expects in many); a term too short for trigrams has none to look up."""
        if len(term) < INDEXED_TERM_LENGTH:
            return None
        return self.text_contains(term)

    def _error(self, exc: BaseException) -> StoreError:
        """The StoreError for a failure: passing (retry), a value the server cannot hold, or other."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, _REJECTED):
            return StoreRejected(f"{self.where}: a value the database cannot hold: {_reason(exc)}")
        if isinstance(exc, _PASSING):
            return StoreUnavailable(f"{self.where}: the database cannot be reached now ({_reason(exc)})")
        return StoreError(f"{self.where}: {_reason(exc)}")


async def _hold_any_text(db: asyncpg.Connection) -> None:
    """Make text parameters storable whatever they hold: PostgreSQL text cannot hold U+0000, so a NUL is written
    as U+FFFD (the character section 11 uses for what cannot be kept), instead of failing the whole transaction
    it is in (a poll's batch, a group of 202s)."""
    await db.set_type_codec("text", schema="pg_catalog", format="text",
                            encoder=_storable_text, decoder=str)


def _storable_text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


def postgres_where(url: str) -> str:
    """The server and database of `url` without user or password, for messages."""
    rest = url.split("://", 1)[-1]
    return "postgresql://" + rest.rsplit("@", 1)[-1].split("?", 1)[0]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
