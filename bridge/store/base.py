"""The store's one interface: a transaction holding every concern's statements, and the store that opens it.

Each concern (cursors, messages, events, devices, safety, idempotency, sends, outbox, pool) lives in a module of its
own: `…Ops`, its statements inside a caller's transaction, and `…Reads`, the ones callers make on their own.
A backend per engine implements the `…Ops` and says how transactions start; everything else is shared. Times
are Unix seconds passed in by the caller: the store never reads the clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from bridge.store.cursors import CursorOps, CursorReads
from bridge.store.devices import DeviceOps, DeviceReads
from bridge.store.events import EventOps
from bridge.store.idempotency import IdempotencyOps, IdempotencyReads
from bridge.store.leases import LeaseOps, LeaseReads
from bridge.store.messages import MessageOps, MessageReads, TextSearch
from bridge.store.outbox import OutboxOps, OutboxReads
from bridge.store.pool import PoolOps, PoolReads
from bridge.store.records import Row
from bridge.store.safety import SafetyOps
from bridge.store.sends import SendOps, SendReads


class Tx(CursorOps, MessageOps, EventOps, DeviceOps, SafetyOps, IdempotencyOps, SendOps, OutboxOps, PoolOps, LeaseOps,
         ABC):
    """One transaction on the store: all statements made through it commit together or not at all."""

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one statement in the engine's own dialect (maintenance and tests; the bridge uses the methods)."""


class Store(CursorReads, MessageReads, DeviceReads, IdempotencyReads, SendReads, OutboxReads, LeaseReads, TextSearch,
            PoolReads, ABC):
    """The bridge's database, whatever the engine; open it with `bridge.store.open_store`.

    `shared` says whether other processes (replicas) may work on the same database; `holder` is the name this
    process claims work under, unique among them.
    """

    shared: bool = False
    holder: str

    @abstractmethod
    async def close(self) -> None:
        """Close the database; committed work is durable."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Rows of one read query in the engine's own dialect (maintenance and tests)."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of one read query in the engine's own dialect, or None."""


def replica_name() -> str:
    """A name for this process unique among replicas: host, pid and a random part (a restart is a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
