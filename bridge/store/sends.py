"""The send queue: accepted sends and one recipient row each, from queued to submitted, failed or refused.

A recipient is `queued` until claimed, `submitting` while its upstream call is out, then `submitted` (with the
upstream sms id once known), `in_doubt` when the call's outcome is unknown, or `failed` / `refused` for good.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.access import Access
from bridge.store.records import NewSend, Row


class SendOps(ABC):
    """Send-queue statements inside a transaction.

    Recipient rows handed to the sender (`due_recipients`, `recipients_by_id`) have the columns id, send_id,
    number, state, attempts, submitted_ts, resend_ts, correlation_id and, from their send, body, device_id, sim, send_at, urgent,
    customer_id; device_id and sim are the recipient's pool member once placed, else the send's; send_device_id,
    send_sim and is_reply are the send's own, member_device the pool's placement (or None), and avoid_device,
    avoid_sim the member a failover must not use.
    """

    @abstractmethod
    async def insert_send(self, send: NewSend, now: float) -> None:
        """Queue a send and one row per recipient."""

    @abstractmethod
    async def insert_sends(self, sends: Iterable[NewSend], now: float) -> None:
        """Queue many sends and their recipients."""

    @abstractmethod
    async def get_send(self, send_id: str) -> tuple[Row, list[Row]] | None:
        """A send (id, source, send_at, created_ts) and its recipients in order (number, sms_id, state, reason,
        `status`, the upstream status the poller last saw, or None, position, and the device_id and sim it goes
        out on), or None for an unknown id."""

    @abstractmethod
    async def send_queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, and outbox rows pending and dead, by name."""

    @abstractmethod
    async def recover_submitting(self, due_ts: float, now: float) -> int:
        """Put recipients a stopped process left `submitting` in doubt, due at `due_ts`; returns how many."""

    @abstractmethod
    async def due_recipients(self, state: str, now: float, limit: int) -> list[Row]:
        """Up to `limit` recipients in `state` (queued or in_doubt) due at `now`, oldest first, with their send."""

    @abstractmethod
    async def recipients_by_id(self, ids: Iterable[int]) -> list[Row]:
        """The recipients among `ids` that are submitted without a known sms id, with their send."""

    @abstractmethod
    async def next_recipient_due(self) -> float | None:
        """When the next queued or in-doubt recipient falls due, or None when there is none."""

    @abstractmethod
    async def unlearned_recipient_ids(self, since: float) -> list[int]:
        """Recipients submitted after `since` whose upstream sms id is not known yet."""

    @abstractmethod
    async def unlearned_recipients(self, since: float, correlation_ids: Iterable[int]) -> list[Row]:
        """Recipients submitted after `since` whose upstream sms id is not known yet and whose customerid is
        among `correlation_ids`, with their send, by id (every poll asks for the customerids it lists: it reads
        only the rows it may teach)."""

    @abstractmethod
    async def set_recipients(self, state: str, changes: Iterable[tuple[int, str | None, float]], now: float) -> None:
        """Move recipients, given as (id, reason, next_attempt_ts), to `state`."""

    @abstractmethod
    async def set_in_doubt(self, changes: Iterable[tuple[int, str, float, float]], now: float) -> None:
        """Put recipients, given as (id, reason, next lookup ts, earliest resend ts), in doubt."""

    @abstractmethod
    async def mark_submitting(self, ids: Iterable[int], now: float) -> None:
        """Count an attempt for each recipient about to be handed to the upstream."""

    @abstractmethod
    async def mark_submitted(self, changes: Iterable[tuple[int, int | None, float]], now: float) -> None:
        """Recipients the upstream accepted, as (id, sms id or None while unknown, next_attempt_ts)."""

    @abstractmethod
    async def assigned_sms_ids(self, sms_ids: Iterable[int]) -> set[int]:
        """The upstream ids among `sms_ids` that a recipient already claims."""


class SendReads(Access):
    """Send-queue reads on the store, each in a read of its own."""

    async def get_send(self, send_id: str) -> tuple[Row, list[Row]] | None:
        """A send and its recipients in order, or None for an unknown id (see `SendOps.get_send`)."""
        async with self.reading() as tx:
            return await tx.get_send(send_id)

    async def send_queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, and outbox rows pending and dead, by name."""
        async with self.reading() as tx:
            return await tx.send_queue_depths()

    async def next_recipient_due(self) -> float | None:
        """When the next queued or in-doubt recipient falls due, or None when there is none."""
        async with self.reading() as tx:
            return await tx.next_recipient_due()

    async def unlearned_recipient_ids(self, since: float) -> list[int]:
        """Recipients submitted after `since` whose upstream sms id is not known yet."""
        async with self.reading() as tx:
            return await tx.unlearned_recipient_ids(since)
