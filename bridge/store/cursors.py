"""Named poll cursors: where the poller resumes, and the instant the bridge first started."""

from __future__ import annotations

from abc import ABC, abstractmethod

from bridge.store.access import Access


class CursorOps(ABC):
    """Cursor statements inside a transaction."""

    @abstractmethod
    async def get_cursor(self, name: str) -> str | None:
        """The stored value of a named cursor, or None before it is first set."""

    @abstractmethod
    async def set_cursor(self, name: str, value: str) -> None:
        """Set a named cursor."""


class CursorReads(Access):
    """Cursor reads on the store, each in a read of its own."""

    async def get_cursor(self, name: str) -> str | None:
        """The stored value of a named poll cursor, or None before the first poll."""
        async with self.reading() as tx:
            return await tx.get_cursor(name)
