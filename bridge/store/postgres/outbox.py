"""Outbox statements on PostgreSQL; the lane queries read the partial index `outbox_due`."""

from __future__ import annotations

import json
from collections.abc import Iterable
import asyncpg

from bridge.store.outbox import OutboxOps
from bridge.store.postgres.leases import claimable
from bridge.store.records import AttemptLog, NewDelivery, Row


class PostgresOutbox(OutboxOps):
    """The `outbox` and `disabled_targets` tables."""

    _db: asyncpg.Connection
    _holder: str

    async def insert_delivery(self, delivery: NewDelivery, now: float) -> None:
        """Add one outbox row, due at once."""
        await self.insert_deliveries([delivery], now)

    async def insert_deliveries(self, deliveries: Iterable[NewDelivery], now: float) -> None:
        """Add outbox rows, due at once, in their order."""
        await self._db.executemany(
            "INSERT INTO outbox (event_id, kind, target, rule, spec, next_attempt_ts, created_ts, updated_ts) "
            "VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
            [(d.event_id, d.kind, d.target, d.rule, json.dumps(dict(d.spec), separators=(",", ":")), now)
             for d in deliveries],
        )

    async def due_deliveries(
        self, now: float, kind: str, target: str | None, first_delay: float, limit: int, exclude: Iterable[int],
    ) -> list[Row]:
        """Up to `limit` pending rows of a lane due at `now`, oldest first, with their event's `payload`: claimed
        for this replica (rows another live replica claimed are not due here) until their attempt is recorded."""
        rows = await self._db.fetch(
            "WITH taken AS (SELECT o.id FROM outbox o"
            f" WHERE o.state = 'pending' AND o.next_attempt_ts <= $1 AND {_LANE} AND {claimable('o', '$7')}"
            " AND (o.attempts > 0 OR o.next_attempt_ts <= $5) ORDER BY o.next_attempt_ts, o.id LIMIT $6"
            " FOR UPDATE OF o SKIP LOCKED)"
            " UPDATE outbox o SET claimed_by = $7 FROM taken, events e WHERE o.id = taken.id AND e.id = o.event_id"
            " RETURNING o.id, o.event_id, o.kind, o.target, o.rule, o.spec, o.attempts, o.next_attempt_ts, e.payload",
            now, kind, target, list(exclude), now - first_delay, limit, self._holder,
        )
        return sorted(rows, key=lambda row: (row["next_attempt_ts"], row["id"]))

    async def next_delivery_ts(self, kind: str, target: str | None, first_delay: float,
                               exclude: Iterable[int]) -> float | None:
        """When the next pending row of a lane falls due (rows in `exclude` left out), or None if none is pending;
        rows another live replica claimed do not count."""
        free = claimable("o", "$5")
        first = (f"SELECT o.next_attempt_ts + $1 AS due FROM outbox o WHERE o.state = 'pending' AND {_LANE} "
                 f"AND {free} AND o.attempts = 0 ORDER BY o.next_attempt_ts LIMIT 1")
        retry = (f"SELECT o.next_attempt_ts AS due FROM outbox o WHERE o.state = 'pending' AND {_LANE} "
                 f"AND {free} AND o.attempts > 0 ORDER BY o.next_attempt_ts LIMIT 1")
        return await self._db.fetchval(
            f"SELECT min(due) FROM (({first}) UNION ALL ({retry})) AS d", first_delay, kind, target, list(exclude),
            self._holder,
        )

    async def record_attempts(self, outcomes: Iterable[tuple[int, str, float, str | None, int | None]],
                              now: float) -> None:
        """Count one attempt of each outbox row and set its outcome."""
        await self._db.executemany(
            "UPDATE outbox SET state = $1, attempts = attempts + 1, next_attempt_ts = $2, last_error = $3, "
            "last_status = $4, updated_ts = $5, claimed_by = NULL WHERE id = $6",
            [(state, next_ts, error, status, now, row_id) for row_id, state, next_ts, error, status in outcomes],
        )

    async def log_attempts(self, attempts: Iterable[AttemptLog], now: float) -> None:
        """Keep the history of delivery attempts (the outbox row holds only the last)."""
        await self._db.executemany(
            "INSERT INTO delivery_attempts (outbox_id, ts, outcome, status, latency_ms, error, response) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [(a.delivery_id, now, a.outcome, a.status, a.latency_ms, a.error, a.response) for a in attempts],
        )

    async def disable_target(self, name: str, reason: str, now: float) -> bool:
        """Mark a webhook target disabled; False when it already was."""
        done = await self._db.execute(
            "INSERT INTO disabled_targets (name, reason, disabled_ts) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO NOTHING",
            name, reason, now,
        )
        return done != "INSERT 0 0"

    async def disabled_targets(self) -> list[Row]:
        """The disabled webhook targets: name, reason, disabled_ts."""
        return list(await self._db.fetch("SELECT name, reason, disabled_ts FROM disabled_targets ORDER BY name"))

    async def pending_deliveries_by_target(self) -> list[Row]:
        """How many rows are pending per kind and target: kind, target, count."""
        return list(await self._db.fetch(
            "SELECT kind, target, count(*) AS count FROM outbox WHERE state = 'pending' GROUP BY kind, target"
        ))

    async def list_deliveries(self, failed_only: bool = False) -> list[Row]:
        """Outbox rows with their event type, oldest first; `failed_only`: dead rows and pending ones that failed."""
        where = "WHERE o.state = 'dead' OR (o.state = 'pending' AND o.attempts > 0)" if failed_only else ""
        return list(await self._db.fetch(
            "SELECT o.id, o.event_id, e.type AS event_type, o.kind, o.target, o.rule, o.state, o.attempts, "
            "o.next_attempt_ts, o.last_error, o.last_status, o.created_ts, o.updated_ts "
            f"FROM outbox o JOIN events e ON e.id = o.event_id {where} ORDER BY o.id"
        ))

    async def delivery_states(self, ids: Iterable[int]) -> list[Row]:
        """The state of each existing outbox row among `ids`: id, state."""
        return list(await self._db.fetch("SELECT id, state FROM outbox WHERE id = ANY($1::bigint[])", list(ids)))

    async def replay_deliveries(self, now: float, ids: Iterable[int] | None = None,
                                target: str | None = None) -> tuple[list[int], list[str]]:
        """Re-queue dead rows (those of `ids`, else all; only `target`'s when given) as never attempted and due
        at `now`, and re-enable the webhook targets they go to (and `target`). Returns (row ids, targets enabled)."""
        rows = await self._db.fetch(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ts = $1, updated_ts = $1, claimed_by = NULL "
            "WHERE state = 'dead' AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[])) "
            "AND ($3::text IS NULL OR (kind = 'webhook' AND target = $3)) RETURNING id, kind, target",
            now, None if ids is None else list(ids), target,
        )
        names = {row["target"] for row in rows if row["kind"] == "webhook"} | ({target} if target else set())
        enabled = await self._db.fetch(
            "DELETE FROM disabled_targets WHERE name = ANY($1::text[]) RETURNING name", sorted(names))
        return sorted(row["id"] for row in rows), sorted(row["name"] for row in enabled)


# A lane's rows on alias `o`: $2 the kind, $3 the target (NULL: any), $4 the ids left out.
_LANE = "o.kind = $2 AND ($3::text IS NULL OR o.target = $3) AND NOT (o.id = ANY($4::bigint[]))"
