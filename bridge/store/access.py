"""How the store's per-concern read helpers reach a transaction, whatever the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.store.base import Tx


class Access(ABC):
    """A store that opens transactions and reads; the engine's backend says how."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Run the block as one write transaction: all of it is committed, or none of it."""

    @abstractmethod
    def reading(self) -> AbstractAsyncContextManager[Tx]:
        """Give a transaction for reads, never interleaved with another task's open write transaction."""
