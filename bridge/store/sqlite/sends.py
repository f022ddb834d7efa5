"""Send-queue statements on SQLite.

Queries on recipients repeat the partial index's `state IN (...)` term so SQLite reads recipients_due. Id lists
go through json_each so one statement serves any number of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from bridge.store.records import NewSend, Row
from bridge.store.sends import SendOps

_RECIPIENT_FIELDS = (
    "SELECT r.id, r.send_id, r.number, r.state, r.attempts, r.submitted_ts, r.resend_ts, r.correlation_id, "
    "s.body, coalesce(r.device_id, s.device_id) AS device_id, coalesce(r.sim, s.sim) AS sim, s.send_at, s.urgent, "
    "s.customer_id, s.device_id AS send_device_id, s.sim AS send_sim, s.is_reply, r.device_id AS member_device, "
    "r.avoid_device, r.avoid_sim FROM recipients r JOIN sends s ON s.id = r.send_id "
)
# A fresh correlation customerid: 1 … 2**31 - 1, the upstream's int range (SQLite's random() is 64-bit).
_NEW_CORRELATION_ID = "(abs(random() % 2147483647) + 1)"


class SqliteSends(SendOps):
    """The `sends` and `recipients` tables."""

    _db: aiosqlite.Connection

    async def insert_send(self, send: NewSend, now: float) -> None:
        """Queue a send and one row per recipient."""
        await self._db.execute(
            "INSERT INTO sends (id, source, body, device_id, sim, send_at, urgent, customer_id, event_id, "
            "is_reply, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (send.id, send.source, send.body, send.device_id, send.sim, send.send_at, int(send.urgent),
             send.customer_id, send.event_id, int(send.is_reply), now),
        )
        await self._db.executemany(
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts, correlation_id) "
            f"VALUES (?, ?, ?, 'queued', ?, ?, {_NEW_CORRELATION_ID})",
            [(send.id, i, number, now, now) for i, number in enumerate(send.recipients)],
        )

    async def insert_sends(self, sends: Iterable[NewSend], now: float) -> None:
        """Queue many sends and their recipients.

        Two statements over JSON arrays rather than executemany: SQLite then runs each in one call, so the
        database thread does not wait for the event loop's thread once per row to bind parameters.
        """
        sends = list(sends)
        rows = [[s.id, s.source, _json_text(s.body), s.device_id, s.sim, s.send_at, int(s.urgent), s.customer_id,
                 s.event_id, int(s.is_reply)] for s in sends]
        columns = [f"json_extract(value, '$[{i}]')" for i in range(10)]
        columns[2] = _TEXT_OF_JSON.format(columns[2])  # the body
        await self._db.execute(
            "INSERT INTO sends (id, source, body, device_id, sim, send_at, urgent, customer_id, event_id, "
            "is_reply, created_ts) SELECT " + ", ".join(columns) + ", ? FROM json_each(?)",
            (now, json.dumps(rows)),
        )
        recipients = [[s.id, i, _json_text(number)] for s in sends for i, number in enumerate(s.recipients)]
        await self._db.execute(
            "INSERT INTO recipients (send_id, position, number, state, next_attempt_ts, updated_ts, correlation_id) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            + _TEXT_OF_JSON.format("json_extract(value, '$[2]')") + ", "
            f"'queued', ?1, ?1, {_NEW_CORRELATION_ID} FROM json_each(?2)",
            (now, json.dumps(recipients)),
        )

    async def get_send(self, send_id: str) -> tuple[Row, list[Row]] | None:
        """A send (id, source, send_at, created_ts) and its recipients in order, or None for an unknown id."""
        send = await (await self._db.execute(
            "SELECT id, source, send_at, created_ts FROM sends WHERE id = ?", (send_id,)
        )).fetchone()
        if send is None:
            return None
        cursor = await self._db.execute(
            "SELECT r.number, r.sms_id, r.state, r.reason, m.status, r.position, "
            "coalesce(r.device_id, s.device_id) AS device_id, coalesce(r.sim, s.sim) AS sim FROM recipients r "
            "JOIN sends s ON s.id = r.send_id LEFT JOIN messages m ON m.id = r.sms_id WHERE r.send_id = ? "
            "ORDER BY r.position",
            (send_id,),
        )
        return send, list(await cursor.fetchall())

    async def send_queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, and outbox rows pending and dead, by name."""
        depths = {"queued": 0, "submitting": 0, "in_doubt": 0}
        cursor = await self._db.execute(
            "SELECT state, count(*) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "GROUP BY state"
        )
        depths.update({row[0]: row[1] for row in await cursor.fetchall()})
        for state in ("pending", "dead"):
            row = await (await self._db.execute("SELECT count(*) FROM outbox WHERE state = ?", (state,))).fetchone()
            depths[f"outbox_{state}"] = row[0]
        return depths

    async def recover_submitting(self, due_ts: float, now: float) -> int:
        """Put recipients a stopped process left `submitting` in doubt, due at `due_ts`; returns how many."""
        cursor = await self._db.execute(
            "UPDATE recipients SET state = 'in_doubt', next_attempt_ts = ?, updated_ts = ? "
            "WHERE state IN ('queued', 'submitting', 'in_doubt') AND state = 'submitting'",
            (due_ts, now),
        )
        return cursor.rowcount

    async def due_recipients(self, state: str, now: float, limit: int) -> list[Row]:
        """Up to `limit` recipients in `state` (queued or in_doubt) due at `now`, oldest first, with their send."""
        cursor = await self._db.execute(
            _RECIPIENT_FIELDS + "WHERE r.state IN ('queued', 'submitting', 'in_doubt') AND r.state = ? "
            "AND r.next_attempt_ts <= ? ORDER BY r.next_attempt_ts, r.id LIMIT ?",
            (state, now, limit),
        )
        return list(await cursor.fetchall())

    async def recipients_by_id(self, ids: Iterable[int]) -> list[Row]:
        """The recipients among `ids` that are submitted without a known sms id, with their send."""
        cursor = await self._db.execute(
            _RECIPIENT_FIELDS + "WHERE r.id IN (SELECT value FROM json_each(?)) "
            "AND r.state = 'submitted' AND r.sms_id IS NULL ORDER BY r.id",
            (json.dumps(list(ids)),),
        )
        return list(await cursor.fetchall())

    async def next_recipient_due(self) -> float | None:
        """When the next queued or in-doubt recipient falls due, or None when there is none."""
        cursor = await self._db.execute(
            "SELECT min(next_attempt_ts) FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "AND state != 'submitting'"
        )
        return (await cursor.fetchone())[0]

    async def unlearned_recipient_ids(self, since: float) -> list[int]:
        """Recipients submitted after `since` whose upstream sms id is not known yet."""
        cursor = await self._db.execute(
            "SELECT id FROM recipients WHERE state = 'submitted' AND sms_id IS NULL AND submitted_ts >= ? "
            "ORDER BY id",
            (since,),
        )
        return [row[0] for row in await cursor.fetchall()]

    async def unlearned_recipients(self, since: float, correlation_ids: Iterable[int]) -> list[Row]:
        """Recipients submitted after `since` whose upstream sms id is not known yet and whose customerid is
        among `correlation_ids`, with their send, by id."""
        # The indexes are named: without statistics SQLite would rather walk every recipient still to learn.
        unlearned = "r.state = 'submitted' AND r.sms_id IS NULL AND r.submitted_ts >= ?1"
        by_own = _RECIPIENT_FIELDS.replace("FROM recipients r ", "FROM recipients r INDEXED BY "
                                           "recipients_unlearned_correlation ")
        by_send = _RECIPIENT_FIELDS.replace("JOIN sends s ", "JOIN sends s INDEXED BY sends_customer ")
        cursor = await self._db.execute(
            by_own + f"WHERE r.correlation_id IN (SELECT value FROM json_each(?2)) AND {unlearned} "
            "AND s.customer_id IS NULL UNION ALL "
            + by_send + f"WHERE s.customer_id IN (SELECT value FROM json_each(?2)) AND {unlearned} ORDER BY 1",
            (since, json.dumps(sorted(set(correlation_ids)))),
        )
        return list(await cursor.fetchall())

    async def set_recipients(self, state: str, changes: Iterable[tuple[int, str | None, float]], now: float) -> None:
        """Move recipients, given as (id, reason, next_attempt_ts), to `state`."""
        await self._db.executemany(
            "UPDATE recipients SET state = ?, reason = ?, next_attempt_ts = ?, updated_ts = ? WHERE id = ?",
            [(state, reason, due, now, rid) for rid, reason, due in changes],
        )

    async def set_in_doubt(self, changes: Iterable[tuple[int, str, float, float]], now: float) -> None:
        """Put recipients, given as (id, reason, next lookup ts, earliest resend ts), in doubt."""
        await self._db.executemany(
            "UPDATE recipients SET state = 'in_doubt', reason = ?, next_attempt_ts = ?, resend_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(reason, due, resend, now, rid) for rid, reason, due, resend in changes],
        )

    async def mark_submitting(self, ids: Iterable[int], now: float) -> None:
        """Count an attempt for each recipient about to be handed to the upstream."""
        await self._db.executemany(
            "UPDATE recipients SET state = 'submitting', attempts = attempts + 1, reason = NULL, submitted_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(now, now, rid) for rid in ids],
        )

    async def mark_submitted(self, changes: Iterable[tuple[int, int | None, float]], now: float) -> None:
        """Recipients the upstream accepted, as (id, sms id or None while unknown, next_attempt_ts)."""
        await self._db.executemany(
            "UPDATE recipients SET state = 'submitted', sms_id = ?, reason = NULL, next_attempt_ts = ?, "
            "updated_ts = ? WHERE id = ?",
            [(sms_id, due, now, rid) for rid, sms_id, due in changes],
        )

    async def assigned_sms_ids(self, sms_ids: Iterable[int]) -> set[int]:
        """The upstream ids among `sms_ids` that a recipient already claims."""
        cursor = await self._db.execute(
            "SELECT r.sms_id FROM json_each(?1) AS j JOIN recipients r ON r.sms_id = j.value UNION "
            "SELECT a.sms_id FROM json_each(?1) AS j JOIN recipient_attempts a ON a.sms_id = j.value",
            (json.dumps(list(sms_ids)),),
        )
        return {row[0] for row in await cursor.fetchall()}


# SQLite's JSON functions end a string at its first NUL: free text crosses JSON with NUL written as \x01 "0"
# and \x01 itself as \x01 "1", and _TEXT_OF_JSON (an SQL expression around the extracted value) undoes it.
_TEXT_OF_JSON = "replace(replace({}, char(1) || '0', char(0)), char(1) || '1', char(1))"


def _json_text(text: str) -> str:
    """`text` written so that it survives SQLite's JSON functions whole (read back with _TEXT_OF_JSON)."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x011").replace("\x00", "\x010")
