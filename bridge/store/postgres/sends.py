"""Send-queue statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.postgres.leases import claimable
from bridge.store.records import NewSend, Row
from bridge.store.sends import SendOps

_RECIPIENT_FIELDS = (
    "SELECT r.id, r.send_id, r.number, r.state, r.attempts, r.submitted_ts, r.resend_ts, r.correlation_id, "
    "s.body, coalesce(r.device_id, s.device_id) AS device_id, coalesce(r.sim, s.sim) AS sim, s.send_at, s.urgent, "
    "s.customer_id, s.device_id AS send_device_id, s.sim AS send_sim, s.is_reply, r.device_id AS member_device, "
    "r.avoid_device, r.avoid_sim FROM recipients r JOIN sends s ON s.id = r.send_id "
)
# A fresh correlation customerid: 1 … 2**31 - 1, the upstream's int range.
_NEW_CORRELATION_ID = "(floor(random() * 2147483647)::bigint + 1)"
_OPEN = "('queued', 'submitting', 'in_doubt')"
# How long one replica keeps an in-doubt recipient to itself while it looks it up upstream.
IN_DOUBT_CLAIM = 120.0


class PostgresSends(SendOps):
    """The `sends` and `recipients` tables."""

    _db: asyncpg.Connection
    _holder: str

    async def insert_send(self, send: NewSend, now: float) -> None:
        """Queue a send and one row per recipient."""
        await self.insert_sends([send], now)

    async def insert_sends(self, sends: Iterable[NewSend], now: float) -> None:
        """Queue many sends and their recipients, in two statements."""
        sends = list(sends)
        await self._db.executemany(
            "INSERT INTO sends (id, source, body, device_id, sim, send_at, urgent, customer_id, event_id, "
            "is_reply, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [(s.id, s.source, s.body, s.device_id, s.sim, s.send_at, int(s.urgent), s.customer_id, s.event_id,
              int(s.is_reply), now) for s in sends],
        )
        await self._db.executemany(
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts, correlation_id) "
            f"VALUES ($1, $2, $3, 'queued', $4, $4, {_NEW_CORRELATION_ID})",
            [(s.id, i, number, now) for s in sends for i, number in enumerate(s.recipients)],
        )

    async def get_send(self, send_id: str) -> tuple[Row, list[Row]] | None:
        """A send (id, source, send_at, created_ts) and its recipients in order, or None for an unknown id."""
        send = await self._db.fetchrow("SELECT id, source, send_at, created_ts FROM sends WHERE id = $1", send_id)
        if send is None:
            return None
        recipients = await self._db.fetch(
            "SELECT r.number, r.sms_id, r.state, r.reason, m.status, r.position, "
            "coalesce(r.device_id, s.device_id) AS device_id, coalesce(r.sim, s.sim) AS sim FROM recipients r "
            "JOIN sends s ON s.id = r.send_id LEFT JOIN messages m ON m.id = r.sms_id WHERE r.send_id = $1 "
            "ORDER BY r.position",
            send_id,
        )
        return send, list(recipients)

    async def send_queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, and outbox rows pending and dead, by name."""
        depths = {"queued": 0, "submitting": 0, "in_doubt": 0}
        rows = await self._db.fetch(f"SELECT state, count(*) FROM recipients WHERE state IN {_OPEN} GROUP BY state")
        depths.update({row[0]: row[1] for row in rows})
        for state in ("pending", "dead"):
            depths[f"outbox_{state}"] = await self._db.fetchval("SELECT count(*) FROM outbox WHERE state = $1", state)
        return depths

    async def recover_submitting(self, due_ts: float, now: float) -> int:
        """Put recipients left `submitting` by this replica (between its passes no call is in flight) or by a
        replica no longer alive in doubt, due at `due_ts`; returns how many. Another live replica's are its own."""
        done = await self._db.execute(
            "UPDATE recipients r SET state = 'in_doubt', next_attempt_ts = $1, updated_ts = $2, claimed_by = NULL "
            f"WHERE r.state IN {_OPEN} AND r.state = 'submitting' AND {claimable('r', '$3')}",
            due_ts, now, self._holder,
        )
        return int(done.split()[-1])

    async def due_recipients(self, state: str, now: float, limit: int) -> list[Row]:
        """Up to `limit` recipients in `state` (queued or in_doubt) due at `now`, oldest first, with their send.

        In-doubt rows are claimed for IN_DOUBT_CLAIM seconds (they fall due again only then) so that one replica
        at a time reconciles each; queued ones are claimed by the caller's `mark_submitting`.
        """
        if state != "in_doubt":
            return list(await self._db.fetch(
                _RECIPIENT_FIELDS + f"WHERE r.state IN {_OPEN} AND r.state = $1 AND r.next_attempt_ts <= $2 "
                "ORDER BY r.next_attempt_ts, r.id LIMIT $3 FOR UPDATE OF r SKIP LOCKED",
                state, now, limit,
            ))
        rows = await self._db.fetch(
            "WITH taken AS (SELECT r.id FROM recipients r WHERE r.state IN " + _OPEN + " AND r.state = 'in_doubt' "
            "AND r.next_attempt_ts <= $1 ORDER BY r.next_attempt_ts, r.id LIMIT $2 FOR UPDATE SKIP LOCKED), "
            "claimed AS (UPDATE recipients r SET next_attempt_ts = $1 + $3, claimed_by = $4 FROM taken "
            "WHERE r.id = taken.id RETURNING r.id) "
            + _RECIPIENT_FIELDS.replace("FROM recipients r", "FROM claimed c JOIN recipients r ON r.id = c.id")
            + "ORDER BY r.next_attempt_ts, r.id",
            now, limit, IN_DOUBT_CLAIM, self._holder,
        )
        return list(rows)

    async def recipients_by_id(self, ids: Iterable[int]) -> list[Row]:
        """The recipients among `ids` that are submitted without a known sms id, with their send."""
        return list(await self._db.fetch(
            _RECIPIENT_FIELDS + "WHERE r.id = ANY($1::bigint[]) AND r.state = 'submitted' AND r.sms_id IS NULL "
            "ORDER BY r.id",
            list(ids),
        ))

    async def next_recipient_due(self) -> float | None:
        """When the next queued or in-doubt recipient falls due, or None when there is none."""
        return await self._db.fetchval(
            f"SELECT min(next_attempt_ts) FROM recipients WHERE state IN {_OPEN} AND state != 'submitting'")

    async def unlearned_recipient_ids(self, since: float) -> list[int]:
        """Recipients submitted after `since` whose upstream sms id is not known yet."""
        return [row["id"] for row in await self._db.fetch(
            "SELECT id FROM recipients WHERE state = 'submitted' AND sms_id IS NULL AND submitted_ts >= $1 "
            "ORDER BY id",
            since,
        )]

    async def unlearned_recipients(self, since: float, correlation_ids: Iterable[int]) -> list[Row]:
        """Recipients submitted after `since` whose upstream sms id is not known yet and whose customerid is
        among `correlation_ids`, with their send, by id."""
        unlearned = "r.state = 'submitted' AND r.sms_id IS NULL AND r.submitted_ts >= $1"
        return list(await self._db.fetch(
            _RECIPIENT_FIELDS + f"WHERE r.correlation_id = ANY($2::bigint[]) AND {unlearned} "
            "AND s.customer_id IS NULL UNION ALL "
            + _RECIPIENT_FIELDS + f"WHERE s.customer_id = ANY($2::bigint[]) AND {unlearned} ORDER BY 1",
            since, sorted(set(correlation_ids)),
        ))

    async def set_recipients(self, state: str, changes: Iterable[tuple[int, str | None, float]], now: float) -> None:
        """Move recipients, given as (id, reason, next_attempt_ts), to `state`."""
        await self._db.executemany(
            "UPDATE recipients SET state = $1, reason = $2, next_attempt_ts = $3, updated_ts = $4 WHERE id = $5",
            [(state, reason, due, now, rid) for rid, reason, due in changes],
        )

    async def set_in_doubt(self, changes: Iterable[tuple[int, str, float, float]], now: float) -> None:
        """Put recipients, given as (id, reason, next lookup ts, earliest resend ts), in doubt."""
        await self._db.executemany(
            "UPDATE recipients SET state = 'in_doubt', reason = $1, next_attempt_ts = $2, resend_ts = $3, "
            "updated_ts = $4 WHERE id = $5",
            [(reason, due, resend, now, rid) for rid, reason, due, resend in changes],
        )

    async def mark_submitting(self, ids: Iterable[int], now: float) -> None:
        """Count an attempt for each recipient about to be handed to the upstream."""
        await self._db.execute(
            "UPDATE recipients SET state = 'submitting', attempts = attempts + 1, reason = NULL, submitted_ts = $1, "
            "updated_ts = $1, claimed_by = $3 WHERE id = ANY($2::bigint[])",
            now, list(ids), self._holder,
        )

    async def mark_submitted(self, changes: Iterable[tuple[int, int | None, float]], now: float) -> None:
        """Recipients the upstream accepted, as (id, sms id or None while unknown, next_attempt_ts)."""
        await self._db.executemany(
            "UPDATE recipients SET state = 'submitted', sms_id = $1, reason = NULL, next_attempt_ts = $2, "
            "updated_ts = $3 WHERE id = $4",
            [(sms_id, due, now, rid) for rid, sms_id, due in changes],
        )

    async def assigned_sms_ids(self, sms_ids: Iterable[int]) -> set[int]:
        """The upstream ids among `sms_ids` that a recipient already claims."""
        rows = await self._db.fetch(
            "SELECT sms_id FROM recipients WHERE sms_id = ANY($1::bigint[]) "
            "UNION SELECT sms_id FROM recipient_attempts WHERE sms_id = ANY($1::bigint[])", list(sms_ids))
        return {row[0] for row in rows}
