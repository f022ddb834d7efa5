"""Messages seen upstream or handed to it: the poller's memory of every SMS and its last status."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from bridge.store.access import Access
from bridge.store.records import Row


class MessageOps(ABC):
    """Message statements inside a transaction."""

    @abstractmethod
    async def open_outgoing(self, since_ts: float) -> list[Row]:
        """Outgoing messages not final yet (1, 3, 2, 6, unknown) created or due since `since_ts`, oldest first:
        id, status, created_ts, due_ts, stuck_reported."""

    @abstractmethod
    async def messages_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        """The stored rows among `ids` (every column), keyed by id."""

    @abstractmethod
    async def insert_messages(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Add newly seen messages (MESSAGE_COLUMNS tuples); an id already stored is left as it is."""

    @abstractmethod
    async def update_message_statuses(self, changes: Iterable[tuple[int, int, float]]) -> None:
        """Apply (sms id, new status, now) changes."""

    @abstractmethod
    async def set_message_due(self, sms_id: int, due_ts: float) -> None:
        """Record when a scheduled outgoing message is due (its timetosend)."""

    @abstractmethod
    async def mark_stuck_reported(self, ids: Iterable[int]) -> None:
        """Note that `sms.stuck` was emitted for these messages, so it is emitted once."""

    @abstractmethod
    async def highest_sms_id(self) -> int | None:
        """The largest upstream SMS id the bridge has recorded, inbound or sent (None before any)."""

    @abstractmethod
    async def index_text(self) -> None:
        """Build the engine's text index over message bodies, filled from the rows stored and kept up to date by
        the engine from then on (the schema upgrade to version 10)."""

    async def record_submitted(
        self, sms_id: int, number: str, body: str, device_id: int | None, sim: int | None,
        customer_id: int | None, now: float, due_ts: float | None = None,
    ) -> None:
        """Remember an SMS the bridge just handed to the upstream (status pending) so its status is followed.

        A poll may have stored it first: then the stored row wins. `due_ts` is its timetosend, if scheduled.
        """
        created = datetime.fromtimestamp(now, timezone.utc).isoformat()
        await self.insert_messages([(sms_id, "out", number, body, device_id, sim, 1, customer_id, created, now, now,
                                     due_ts)])


# The text search's case folding: A-Z match either case, every other character only itself, on every engine.
ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ASCII_FOLD = str.maketrans(ASCII_UPPER, ASCII_LOWER)
INDEXED_TERM_LENGTH = 3  # trigram indexes find no shorter term


def contains_pattern(term: str) -> str:
    """The LIKE pattern (escape character backslash) of bodies containing `term`, A-Z folded to lower case."""
    escaped = term.translate(_ASCII_FOLD).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class TextSearch(ABC):
    """How an engine finds the messages whose body contains a text: A-Z match either case, every other character
    only itself, the same on every engine."""

    @abstractmethod
    def text_contains(self, term: str) -> tuple[str, list[Any]]:
        """A condition on `messages` (`?` placeholders) and its parameters: the body contains `term`. Checked row
        by row: for a bounded scan of recent rows."""

    @abstractmethod
    async def text_indexed(self, term: str, cap: int) -> tuple[str, list[Any]] | None:
        """The condition of `text_contains` through the engine's text index, or None where the index cannot
        answer: a term shorter than INDEXED_TERM_LENGTH, no index, or (where the engine would otherwise read
        them all) more than `cap` bodies hold the term."""


class MessageReads(Access):
    """Message reads on the store, each in a read of its own."""

    async def open_outgoing(self, since_ts: float) -> list[Row]:
        """Outgoing messages not final yet (1, 3, 2, 6, unknown) created or due since `since_ts`, oldest first."""
        async with self.reading() as tx:
            return await tx.open_outgoing(since_ts)

    async def highest_sms_id(self) -> int | None:
        """The largest upstream SMS id the bridge has recorded, inbound or sent (None before any)."""
        async with self.reading() as tx:
            return await tx.highest_sms_id()
