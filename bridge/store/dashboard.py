"""Every read the dashboard makes of the store, in one place (SQLite's placeholders; the SQL itself portable).

Lists are newest first and paged by keyset (`(created_ts, id) < (…)`), never by OFFSET, so a page deep in a
million rows costs what the first one does; each walks an index of migration 6. The SQL is the portable
subset (row values, `IN`, `LIKE`), with `?` placeholders, which every backend's fetch reads.

A text search (a substring; A-Z match either case, every other character only itself) first looks through the
SCAN_ROWS newest rows of the page's range, which finds a common term at once; when they hold less than a page,
the engine's text index answers (SQLite: FTS5 trigrams, PostgreSQL: pg_trgm). A term of fewer than three
characters, which no trigram index finds, or one that many old rows but few recent ones hold, stays with the
scan: its page is marked `scanned` and its Older (or Newer) link goes on from the last row looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.store.base import Store

PAGE_SIZE = 50
SCAN_ROWS = 10_000  # rows a text search looks through before asking the text index
INDEX_CAP = 20_000  # SQLite: bodies holding a term past which sorting its index hits costs more than scanning
_FEED_OVERLAP = 10.0  # seconds re-read by the live feed: a batch may commit after a later one that began after it


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a newest-first list: the (created_ts, id) of the row next to it."""

    ts: float
    id: Any

    def token(self) -> str:
        """The cursor as a URL parameter."""
        return f"{self.ts!r}~{self.id}"

    @classmethod
    def parse(cls, text: str | None, id_type: type = int) -> Cursor | None:
        """A cursor from its URL parameter; None for none or a malformed one (the list then starts at the top)."""
        if not text or "~" not in text:
            return None
        ts, _, ident = text.partition("~")
        try:
            return cls(float(ts), id_type(ident))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """What the messages list is narrowed to; None everywhere means every message."""

    direction: str | None = None
    statuses: tuple[int, ...] = ()
    device_id: int | None = None
    since_ts: float | None = None
    until_ts: float | None = None
    numbers: tuple[str, ...] = ()
    text: str | None = None  # a substring of the body (the store's text search)

    @property
    def empty(self) -> bool:
        """True when nothing narrows the list."""
        return self == MessageFilter()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list and the cursors of the pages around it (None at either end)."""

    rows: list[Any]
    older: Cursor | None
    newer: Cursor | None
    scanned: int | None = None  # rows a bounded text search looked through, when it stopped short of a page


_MESSAGE_COLUMNS = "id, direction, number, body, device_id, sim, status, created, created_ts, updated_ts"


class DashboardReads:
    """The dashboard's queries over a Store."""

    def __init__(self, store: Store, scan_rows: int = SCAN_ROWS) -> None:
        self._store = store
        self._scan_rows = scan_rows

    # --- messages --------------------------------------------------------------------------------

    async def messages(self, where: MessageFilter, before: Cursor | None = None, after: Cursor | None = None,
                       limit: int = PAGE_SIZE) -> Page:
        """A page of messages matching `where`, newest first, older than `before` or newer than `after`."""
        conditions, params = _message_conditions(where)
        if not where.text:
            return await self._page("messages", _MESSAGE_COLUMNS, "created_ts", conditions, params, before, after,
                                    limit)
        scan = await self._page("messages", _MESSAGE_COLUMNS, "created_ts", conditions, params, before, after, limit,
                                text=self._store.text_contains(where.text))
        indexed = None if scan.scanned is None else await self._store.text_indexed(where.text, INDEX_CAP)
        if indexed is None:
            return scan
        return await self._page("messages", _MESSAGE_COLUMNS, "created_ts", [*conditions, indexed[0]],
                                [*params, *indexed[1]], before, after, limit)

    async def message(self, sms_id: int) -> Any:
        """One stored message, or None."""
        return await self._store.fetch_one(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (sms_id,))

    async def events_of_sms(self, sms_id: int) -> list[Any]:
        """The events of one SMS in the order they were recorded: id, type, payload, created_ts."""
        return await self._store.fetch_all(
            "SELECT id, type, payload, created_ts FROM events WHERE sms_id = ? ORDER BY created_ts, id", (sms_id,))

    async def actions_of(self, event_ids: Sequence[str]) -> list[Any]:
        """What the rules and safety did with these events, in order."""
        return await self._fetch_in(
            "SELECT event_id, position, rule, action, target, outcome, reason FROM event_actions "
            "WHERE event_id IN ({}) ORDER BY event_id, position", event_ids)

    async def deliveries_of_events(self, event_ids: Sequence[str]) -> list[Any]:
        """The outbox rows of these events."""
        return await self._fetch_in(_DELIVERY_SELECT + "WHERE o.event_id IN ({}) ORDER BY o.id", event_ids)

    async def sends_of_events(self, event_ids: Sequence[str]) -> list[Any]:
        """The sends these events' rules queued, with each recipient: send id, source, body, number, state…"""
        return await self._fetch_in(_SEND_RECIPIENTS + "WHERE s.event_id IN ({}) ORDER BY s.created_ts, r.position",
                                    event_ids)

    async def send_of_sms(self, sms_id: int) -> list[Any]:
        """The recipient (with its send) that this upstream SMS was sent for, if the bridge sent it."""
        return await self._store.fetch_all(_SEND_RECIPIENTS + "WHERE r.sms_id = ?", (sms_id,))

    # --- deliveries ------------------------------------------------------------------------------

    async def delivery_counts(self) -> list[Any]:
        """Outbox rows pending and dead per kind and target: kind, target, state, count."""
        return await self._store.fetch_all(
            "SELECT kind, target, state, count(*) AS count FROM outbox WHERE state IN ('pending', 'dead') "
            "GROUP BY kind, target, state")

    async def deliveries(self, target: str | None, state: str | None, before: int | None,
                         limit: int = PAGE_SIZE) -> list[Any]:
        """Outbox rows newest first (to `target`, in `state`, with ids below `before` when given)."""
        conditions, params = [], []
        for column, value in (("o.target", target), ("o.state", state)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            conditions.append("o.id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        return await self._store.fetch_all(
            _DELIVERY_SELECT + f"{where}ORDER BY o.id DESC LIMIT ?", (*params, limit))

    async def attempts_of(self, delivery_ids: Sequence[int]) -> list[Any]:
        """Every attempt of these outbox rows, oldest first."""
        return await self._fetch_in(
            "SELECT id, outbox_id, ts, outcome, status, latency_ms, error, response FROM delivery_attempts "
            "WHERE outbox_id IN ({}) ORDER BY outbox_id, id", delivery_ids)

    async def disabled_targets(self) -> list[Any]:
        """The disabled webhook targets: name, reason, disabled_ts."""
        return await self._store.disabled_targets()

    # --- sends, devices, opt-outs ----------------------------------------------------------------

    async def sends(self, before: Cursor | None = None, after: Cursor | None = None,
                    limit: int = PAGE_SIZE) -> Page:
        """A page of sends (API, hooks, rules), newest first."""
        return await self._page("sends", "id, source, body, device_id, sim, send_at, created_ts, event_id",
                                "created_ts", [], [], before, after, limit)

    async def recipients_of(self, send_ids: Sequence[str]) -> list[Any]:
        """The recipients of these sends in order, with the upstream status last seen."""
        return await self._fetch_in(_SEND_RECIPIENTS + "WHERE r.send_id IN ({}) ORDER BY r.send_id, r.position",
                                    send_ids)

    async def devices(self) -> list[Any]:
        """Every known device: id, title, online, last_seen_ts, numbers (JSON)."""
        return await self._store.fetch_all("SELECT id, title, online, last_seen_ts, numbers FROM devices ORDER BY id")

    async def sent_per_member(self, since_ts: float) -> dict[tuple[int | None, int | None], int]:
        """Outgoing SMS created since `since_ts` per (device id, SIM)."""
        rows = await self._store.fetch_all(
            "SELECT device_id, sim, count(*) FROM messages WHERE created_ts >= ? AND direction = 'out' "
            "GROUP BY device_id, sim", (since_ts,))
        return {(row[0], row[1]): row[2] for row in rows}

    async def opt_outs(self, after: str | None = None, limit: int = PAGE_SIZE) -> list[Any]:
        """Opted-out numbers in number order, after `after`: number, source, created_ts."""
        if after is None:
            return await self._store.fetch_all(
                "SELECT number, source, created_ts FROM opt_outs ORDER BY number LIMIT ?", (limit,))
        return await self._store.fetch_all(
            "SELECT number, source, created_ts FROM opt_outs WHERE number > ? ORDER BY number LIMIT ?",
            (after, limit))

    # --- overview --------------------------------------------------------------------------------

    async def counts_since(self, since_ts: float) -> dict[str, int]:
        """Today's figures: messages received and sent since `since_ts` (and how those sent stand now),
        delivery attempts delivered and dead-lettered since then."""
        counts = dict.fromkeys(("received", "sent", "delivered", "failed", "webhooks_delivered", "webhooks_dead"), 0)
        rows = await self._store.fetch_all(
            "SELECT direction, status, count(*) FROM messages WHERE created_ts >= ? GROUP BY direction, status",
            (since_ts,))
        for direction, status, count in rows:
            if direction == "in":
                counts["received"] += count
                continue
            counts["sent"] += count
            if status == 7:
                counts["delivered"] += count
            elif status in _FAILED_STATUSES:
                counts["failed"] += count
        for outcome, count in await self._store.fetch_all(
                "SELECT outcome, count(*) FROM delivery_attempts WHERE ts >= ? GROUP BY outcome", (since_ts,)):
            if outcome == "delivered":
                counts["webhooks_delivered"] += count
            elif outcome in ("dead", "disabled"):
                counts["webhooks_dead"] += count
        return counts

    async def queue_depths(self) -> dict[str, int]:
        """Recipients queued, submitting and in doubt, outbox rows pending and dead."""
        return await self._store.send_queue_depths()

    # --- live feed -------------------------------------------------------------------------------

    async def events_since(self, since_ts: float, limit: int = 200) -> list[Any]:
        """Events recorded since a little before `since_ts` (the caller drops those it has seen): id, type,
        sms_id, created_ts."""
        return await self._store.fetch_all(
            "SELECT id, type, sms_id, created_ts FROM events WHERE created_ts >= ? ORDER BY created_ts LIMIT ?",
            (since_ts - _FEED_OVERLAP, limit))

    async def attempts_after(self, attempt_id: int, limit: int = 200) -> list[Any]:
        """Delivery attempts with ids above `attempt_id`: id, outbox_id, outcome, target, event_id."""
        return await self._store.fetch_all(
            "SELECT a.id, a.outbox_id, a.outcome, o.target, o.event_id FROM delivery_attempts a "
            "JOIN outbox o ON o.id = a.outbox_id WHERE a.id > ? ORDER BY a.id LIMIT ?", (attempt_id, limit))

    async def last_attempt_id(self) -> int:
        """The id of the newest delivery attempt (0 when none)."""
        row = await self._store.fetch_one("SELECT max(id) FROM delivery_attempts")
        return row[0] or 0

    # --- helpers ---------------------------------------------------------------------------------

    async def _fetch_in(self, sql: str, values: Sequence[Any]) -> list[Any]:
        """Rows of `sql` whose one `IN ({})` holds `values` (none: no rows)."""
        values = list(dict.fromkeys(values))
        if not values:
            return []
        return await self._store.fetch_all(sql.format(", ".join("?" * len(values))), values)

    async def _page(self, table: str, columns: str, ts: str, conditions: list[str], params: list[Any],
                    before: Cursor | None, after: Cursor | None, limit: int,
                    text: tuple[str, list[Any]] | None = None) -> Page:
        """A keyset page of `table` on (ts, id): newest first, one extra row read to know whether more follow.
        With `text` (a condition and its parameters), only the `scan_rows` rows next to the cursor are looked
        through: a page that found fewer than `limit` there says how many it looked through (`scanned`)."""
        conditions, params = list(conditions), list(params)
        if after is not None:
            conditions.append(f"({ts}, id) > (?, ?)")
            params += [after.ts, after.id]
            order = "ASC"
        else:
            if before is not None:
                conditions.append(f"({ts}, id) < (?, ?)")
                params += [before.ts, before.id]
            order = "DESC"
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        ordered = f"FROM {table} {where}ORDER BY {ts} {order}, id {order} "
        if text is None:
            rows = await self._store.fetch_all(f"SELECT {columns} {ordered}LIMIT ?", (*params, limit + 1))
        else:
            rows = await self._store.fetch_all(
                f"SELECT {columns} FROM (SELECT {columns} {ordered}LIMIT ?) AS recent WHERE {text[0]} "
                f"ORDER BY {ts} {order}, id {order} LIMIT ?", (*params, self._scan_rows, *text[1], limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        edge = None
        if text is not None and not more:
            edge = await self._store.fetch_one(f"SELECT {ts}, id {ordered}LIMIT 1 OFFSET ?",
                                               (*params, self._scan_rows - 1))
        if after is not None:
            rows.reverse()
            older = _cursor(rows[-1], ts) if rows else before
            newer = _cursor(rows[0], ts) if rows and more else None
        else:
            older = _cursor(rows[-1], ts) if rows and more else None
            newer = _cursor(rows[0], ts) if rows and before is not None else None
        if edge is None:
            return Page(rows, older, newer)
        # The scan stopped at `edge`: the next page in the same direction goes on from there; one back in the
        # other direction starts next to the cursor this page was asked for.
        stop = Cursor(edge[0], edge[1])
        if after is not None:
            return Page(rows, older if rows else Cursor(after.ts, after.id + 1), stop, self._scan_rows)
        return Page(rows, stop, newer if rows or before is None else Cursor(before.ts, before.id - 1), self._scan_rows)


_FAILED_STATUSES = (8, 9, 10, 11, 12, 100, 101)
_DELIVERY_SELECT = (
    "SELECT o.id, o.event_id, e.type AS event_type, e.sms_id, o.kind, o.target, o.rule, o.state, o.attempts, "
    "o.next_attempt_ts, o.last_error, o.last_status, o.created_ts, o.updated_ts "
    "FROM outbox o JOIN events e ON e.id = o.event_id "
)
_SEND_RECIPIENTS = (
    "SELECT s.id AS send_id, s.source, s.body, s.created_ts, s.event_id, r.position, r.number, r.state, r.sms_id, "
    "r.reason, r.attempts, r.resend_ts, m.status FROM recipients r JOIN sends s ON s.id = r.send_id "
    "LEFT JOIN messages m ON m.id = r.sms_id "
)


def _cursor(row: Any, ts: str) -> Cursor:
    return Cursor(row[ts], row["id"])


def _message_conditions(where: MessageFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions and parameters for a MessageFilter."""
    conditions: list[str] = []
    params: list[Any] = []
    for condition, value in (("direction = ?", where.direction), ("device_id = ?", where.device_id),
                             ("created_ts >= ?", where.since_ts), ("created_ts < ?", where.until_ts)):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    for column, values in (("status", where.statuses), ("number", where.numbers)):
        if values:
            conditions.append(f"{column} IN ({', '.join('?' * len(values))})")
            params += values
    return conditions, params

