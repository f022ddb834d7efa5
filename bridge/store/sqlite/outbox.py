"""Outbox statements on SQLite: the lane queries walk the partial index `outbox_due`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import aiosqlite

from bridge.store.outbox import OutboxOps
from bridge.store.records import AttemptLog, NewDelivery, Row


class SqliteOutbox(OutboxOps):
    """The `outbox` and `disabled_targets` tables."""

    _db: aiosqlite.Connection

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        cursor = await self._db.execute(sql, tuple(params))
        return list(await cursor.fetchall())

    async def insert_delivery(self, delivery: NewDelivery, now: float) -> None:
        """Add one outbox row, due at once."""
        await self.insert_deliveries([delivery], now)

    async def insert_deliveries(self, deliveries: Iterable[NewDelivery], now: float) -> None:
        """Add outbox rows, due at once, in their order."""
        await self._db.executemany(
            "INSERT INTO outbox (event_id, kind, target, rule, spec, next_attempt_ts, created_ts, updated_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.event_id, d.kind, d.target, d.rule, json.dumps(dict(d.spec), separators=(",", ":")), now, now, now)
             for d in deliveries],
        )

    async def due_deliveries(
        self, now: float, kind: str, target: str | None, first_delay: float, limit: int, exclude: Iterable[int],
    ) -> list[Row]:
        """Up to `limit` pending rows of a lane due at `now`, oldest first, with their event's `payload`."""
        lane, params = _lane_filter(kind, target, exclude)
        # Walk outbox_due in order and join only the rows taken: the planner would rather sort every pending row.
        sql = (
            "SELECT o.id, o.event_id, o.kind, o.target, o.rule, o.spec, o.attempts, e.payload FROM ("
            " SELECT o.id, o.event_id, o.kind, o.target, o.rule, o.spec, o.attempts, o.next_attempt_ts"
            " FROM outbox o INDEXED BY outbox_due"
            f" WHERE o.state = 'pending' AND o.next_attempt_ts <= ? AND {lane}"
            " AND (o.attempts > 0 OR o.next_attempt_ts <= ?) ORDER BY o.next_attempt_ts, o.id LIMIT ?"
            ") o JOIN events e ON e.id = o.event_id ORDER BY o.next_attempt_ts, o.id"
        )
        return await self._rows(sql, (now, *params, now - first_delay, limit))

    async def next_delivery_ts(self, kind: str, target: str | None, first_delay: float,
                               exclude: Iterable[int]) -> float | None:
        """When the next pending row of a lane falls due (rows in `exclude` left out), or None if none is pending."""
        lane, params = _lane_filter(kind, target, exclude)
        first = (f"SELECT o.next_attempt_ts + ? AS due FROM outbox o INDEXED BY outbox_due WHERE o.state = 'pending' "
                 f"AND {lane} AND o.attempts = 0 ORDER BY o.next_attempt_ts LIMIT 1")
        retry = (f"SELECT o.next_attempt_ts AS due FROM outbox o INDEXED BY outbox_due WHERE o.state = 'pending' "
                 f"AND {lane} AND o.attempts > 0 ORDER BY o.next_attempt_ts LIMIT 1")
        [row] = await self._rows(
            f"SELECT min(due) FROM (SELECT * FROM ({first}) UNION ALL SELECT * FROM ({retry}))",
            (first_delay, *params, *params),
        )
        return row[0]

    async def record_attempts(self, outcomes: Iterable[tuple[int, str, float, str | None, int | None]],
                              now: float) -> None:
        """Count one attempt of each outbox row and set its outcome."""
        await self._db.executemany(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt_ts = ?, last_error = ?, "
            "last_status = ?, updated_ts = ? WHERE id = ?",
            [(state, next_ts, error, status, now, row_id) for row_id, state, next_ts, error, status in outcomes],
        )

    async def log_attempts(self, attempts: Iterable[AttemptLog], now: float) -> None:
        """Keep the history of delivery attempts (the outbox row holds only the last)."""
        await self._db.executemany(
            "INSERT INTO delivery_attempts (outbox_id, ts, outcome, status, latency_ms, error, response) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(a.delivery_id, now, a.outcome, a.status, a.latency_ms, a.error, a.response) for a in attempts],
        )

    async def disable_target(self, name: str, reason: str, now: float) -> bool:
        """Mark a webhook target disabled; False when it already was."""
        cursor = await self._db.execute(
            "INSERT INTO disabled_targets (name, reason, disabled_ts) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, reason, now),
        )
        return cursor.rowcount > 0

    async def disabled_targets(self) -> list[Row]:
        """The disabled webhook targets: name, reason, disabled_ts."""
        return await self._rows("SELECT name, reason, disabled_ts FROM disabled_targets ORDER BY name")

    async def pending_deliveries_by_target(self) -> list[Row]:
        """How many rows are pending per kind and target: kind, target, count."""
        return await self._rows(
            "SELECT kind, target, count(*) AS count FROM outbox WHERE state = 'pending' GROUP BY kind, target"
        )

    async def list_deliveries(self, failed_only: bool = False) -> list[Row]:
        """Outbox rows with their event type, oldest first; `failed_only`: dead rows and pending ones that failed."""
        where = f"WHERE {_failed_rows('o.')}" if failed_only else ""
        return await self._rows(
            "SELECT o.id, o.event_id, e.type AS event_type, o.kind, o.target, o.rule, o.state, o.attempts, "
            "o.next_attempt_ts, o.last_error, o.last_status, o.created_ts, o.updated_ts "
            f"FROM outbox o JOIN events e ON e.id = o.event_id {where} ORDER BY o.id"
        )

    async def delivery_states(self, ids: Iterable[int]) -> list[Row]:
        """The state of each existing outbox row among `ids`: id, state."""
        id_list = list(ids)
        return await self._rows(f"SELECT id, state FROM outbox WHERE id IN ({','.join('?' * len(id_list))})", id_list)

    async def replay_deliveries(self, now: float, ids: Iterable[int] | None = None,
                                target: str | None = None) -> tuple[list[int], list[str]]:
        """Re-queue failed rows (dead, or pending after a failed attempt, as `list_deliveries(failed_only=True)`
        lists them; those of `ids`, else all; only `target`'s when given) as never attempted and due at `now`,
        and re-enable the webhook targets they go to (and `target`). Returns (row ids, targets enabled)."""
        where, params = _failed_rows(""), []
        if ids is not None:
            id_list = list(ids)
            where += f" AND id IN ({','.join('?' * len(id_list))})"
            params += id_list
        if target is not None:
            where += " AND kind = 'webhook' AND target = ?"
            params.append(target)
        rows = await self._rows(f"SELECT id, kind, target FROM outbox WHERE {where} ORDER BY id", params)
        await self._db.executemany(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ts = ?, updated_ts = ? WHERE id = ?",
            [(now, now, row["id"]) for row in rows],
        )
        names = {row["target"] for row in rows if row["kind"] == "webhook"} | ({target} if target else set())
        enabled = []
        for name in sorted(names):
            cursor = await self._db.execute("DELETE FROM disabled_targets WHERE name = ?", (name,))
            if cursor.rowcount > 0:
                enabled.append(name)
        return [row["id"] for row in rows], enabled


def _failed_rows(alias: str) -> str:
    """SQL condition of a failed delivery: dead, or pending again after a failed attempt."""
    return f"({alias}state = 'dead' OR ({alias}state = 'pending' AND {alias}attempts > 0))"


def _lane_filter(kind: str, target: str | None, exclude: Iterable[int]) -> tuple[str, list[Any]]:
    """SQL condition (on alias `o`) and parameters selecting a lane's rows, those in `exclude` left out."""
    sql, params = "o.kind = ?", [kind]
    if target is not None:
        sql += " AND o.target = ?"
        params.append(target)
    excluded = list(exclude)
    if excluded:
        sql += f" AND o.id NOT IN ({','.join('?' * len(excluded))})"
        params += excluded
    return sql, params
