"""The outbox worker: signed, retried, dead-lettered webhooks and contact tags, as rules routed them.

Outbox rows are worked in lanes: one per webhook target (its own concurrency limit, timeout and retry
schedule) and one for every `tag` row (they all go to the gateway). A lane takes due rows from the store in
batches of a few times its concurrency and runs at most `concurrency` attempts at once, so a slow or failing
target keeps its backlog in the store and never holds up another lane. Which rows are taken is known in memory
only: after a crash they are still pending and due, and are delivered again with the same `webhook-id`
(at-least-once; receivers dedupe on it). The outcomes of concurrent attempts are committed together, each
attempt's bookkeeping in one transaction.

A target answering 410 Gone is disabled (a row in `disabled_targets`): its rows stay pending and are not sent
until `sms-bridge replay` re-enables it (`--target NAME`, or by re-queuing one of its deliveries). A row whose
target is no longer configured also stays pending until the target is configured again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import enum
import functools
import json
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict

from bridge import __version__
from bridge.config import DEFAULT_RETRY, Config, WebhookConfig
from bridge.gateway.errors import ApiError, GatewayError
from bridge.logs import FailureStreak
from bridge.metrics import Metrics
from bridge.signing import signing_key, webhook_headers
from bridge.store import AttemptLog, Store, StoreError
from bridge.templating import JSON_TYPE, TemplateEngine, TemplateError, render_event_body, to_json

if TYPE_CHECKING:
    from bridge.gateway.client import GatewayClient

log = logging.getLogger(__name__)

USER_AGENT = f"smsgateway24-bridge/{__version__}"
JITTER = 0.1                      # a retry waits its delay plus up to 10%, so failed deliveries do not stampede
RETRY_AFTER_CAP = 6 * 3600.0      # the longest a `Retry-After` is obeyed
MAX_IDLE = 15.0                   # the longest the loop sleeps: it then sees replays and re-enabled targets
STOP_GRACE = 5.0
STORE_BACKOFF = 5.0
REFRESH = 1.0                     # how often the loop re-reads what the command line may change (seconds)
TAG_CONCURRENCY = 4
PREFETCH = 4                      # a lane holds up to this many times its concurrency in rows taken, not started
KEPT_RESPONSE_CHARS = 200
MAX_RESPONSE_BYTES = 65_536
TAG_LANE = "tag"
# The head of an event as the pipeline stores it (compact JSON, `rule` null right after `occurred_at`).
_STORED_HEAD = re.compile(r'\{"id":"evt_[0-9a-f]+","type":"[a-z._]+","occurred_at":"[0-9:TZ-]+","rule":null[,}]')


class DeliveryState(enum.StrEnum):
    """The `state` of an outbox row."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Outcome(enum.StrEnum):
    """What one attempt came to; the `outcome` label of `bridge_deliveries_total`."""

    DELIVERED = "delivered"
    RETRY = "retry"        # failed; another attempt is scheduled
    DEAD = "dead"          # failed for the last time, or cannot succeed: dead letter
    DISABLED = "disabled"  # 410 Gone: the target is disabled, the delivery kept for when it is enabled


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one try went: no `error` is success."""

    status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked to wait (429/503 `Retry-After`)
    permanent: bool = False           # retrying cannot help (a template error, a request the API refused)
    gone: bool = False                # 410 Gone
    latency_ms: float | None = None   # from the request to its answer (None: no HTTP request was made)
    response: str | None = None       # the start of the answer's body


def plan_next(attempt: Attempt, attempts_made: int, schedule: Sequence[float], now: float,
              rng: random.Random) -> tuple[Outcome, float]:
    """The outcome of the `attempts_made`-th attempt and when the row is next due (`schedule[n]` precedes
    attempt n+1; there are len(schedule) attempts)."""
    if attempt.error is None:
        return Outcome.DELIVERED, now
    if attempt.gone:
        return Outcome.DISABLED, now
    if attempt.permanent or attempts_made >= len(schedule):
        return Outcome.DEAD, now
    delay = schedule[attempts_made] * (1 + rng.uniform(0, JITTER))
    if attempt.retry_after is not None:
        delay = max(delay, min(attempt.retry_after, RETRY_AFTER_CAP))
    return Outcome.RETRY, now + delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def response_attempt(status: int, headers: Mapping[str, str], text: str, now: float) -> Attempt:
    """How an HTTP answer counts: 2xx delivered, 410 gone, anything else retried (`Retry-After` on 429/503)."""
    if 200 <= status < 300:
        return Attempt(status, response=text)
    if status == 410:
        return Attempt(status, "HTTP 410 Gone", gone=True, response=text)
    error = f"HTTP {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed: configure the final URL)"
    elif text:
        error += f": {text}"
    retry_after = parse_retry_after(headers.get("Retry-After"), now) if status in (429, 503) else None
    return Attempt(status, error, retry_after, response=text)


@dataclass(frozen=True, slots=True)
class _Due:
    """A due outbox row, with the stored JSON text of the event it delivers."""

    id: int
    event_id: str
    target: str
    rule: str | None
    spec: Mapping[str, Any]
    attempts: int
    payload: str

    @classmethod
    def of(cls, row: Any) -> _Due:
        return cls(row["id"], row["event_id"], row["target"], row["rule"], json.loads(row["spec"]),
                   row["attempts"], row["payload"])

    def default_body(self) -> str:
        """`to_json(self.event_json())`: the stored text with the rule written in, when it has the pipeline's
        head; decoded and encoded again only when it does not."""
        head = _STORED_HEAD.match(self.payload)
        if head is None:
            return to_json(self.event_json())
        cut = head.end() - 1
        return f"{self.payload[:cut - 4]}{to_json(self.rule)}{self.payload[cut:]}"

    def event_json(self) -> dict[str, Any]:
        """The event JSON with `rule` set to the rule that routed this delivery, in its place after `occurred_at`."""
        event: dict[str, Any] = {}
        for key, value in json.loads(self.payload).items():
            if key != "rule":
                event[key] = value
            if key == "occurred_at":
                event["rule"] = self.rule
        event.setdefault("rule", self.rule)
        return event


@dataclass(eq=False, slots=True)
class _Lane:
    """The rows of one webhook target (or of all tags): those taken from the store, waiting or running."""

    kind: str
    target: str | None          # None: every row of the kind
    label: str                  # the target name in logs and metrics
    limit: int
    schedule: tuple[float, ...]
    webhook: WebhookConfig | None = None
    key: bytes | None = None
    timeout: aiohttp.ClientTimeout | None = None
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)  # User-Agent and the configured headers
    taken: set[int] = field(default_factory=set)      # waiting or running: not to be taken again
    waiting: deque[_Due] = field(default_factory=deque)
    running: int = 0
    paused_until: float = 0.0
    disabled: bool = False
    quiet_until: float | None = None  # no row not taken falls due before this (None: ask the store)

    @property
    def room(self) -> int:
        """How many more rows to take: none while more than `limit` wait, else up to PREFETCH * limit waiting.

        Taking rows in batches keeps the store reads few while the running attempts never run dry."""
        return PREFETCH * self.limit - len(self.waiting) if len(self.waiting) <= self.limit else 0

    def is_open(self, now: float) -> bool:
        """Whether attempts may start: not disabled, not paused."""
        return not self.disabled and self.paused_until <= now

    def drop_waiting(self) -> None:
        """Forget the rows not started yet; they stay pending in the store."""
        self.taken.difference_update(row.id for row in self.waiting)
        self.waiting.clear()


@dataclass(frozen=True, slots=True)
class _Record:
    """The bookkeeping of one attempt, written in one transaction (possibly with other attempts')."""

    delivery_id: int
    state: DeliveryState
    next_attempt_ts: float
    error: str | None
    status: int | None
    log: AttemptLog
    disable: str | None = None  # the target to disable


_Written = Callable[[bool, StoreError | None], None]  # (target newly disabled, why it was not written)


class _RecordWriter:
    """Commits the records of concurrent attempts together, one transaction per batch."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._queue: list[tuple[_Record, _Written]] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, record: _Record, written: _Written) -> None:
        """Queue `record` for the next commit; `written` is called once it is committed or has failed."""
        self._queue.append((record, written))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="delivery-records")

    async def drain(self) -> None:
        """Wait until every submitted record is committed or has failed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                disabled = await self._commit([record for record, _ in batch])
            except StoreError as exc:
                for _, written in batch:
                    written(False, exc)
                continue
            for (_, written), newly in zip(batch, disabled):
                written(newly, None)

    async def _commit(self, records: Sequence[_Record]) -> list[bool]:
        now = self._clock()
        async with self._store.transaction() as db:
            await db.record_attempts([(r.delivery_id, r.state, r.next_attempt_ts, r.error, r.status) for r in records],
                                     now)
            await db.log_attempts([r.log for r in records], now)
            return [r.disable is not None and await db.disable_target(r.disable, r.error or "", now)
                    for r in records]


class DeliveryWorker:
    """Delivers due outbox rows: webhooks POSTed to their targets, tags saved through the gateway."""

    def __init__(self, config: Config, store: Store, session: aiohttp.ClientSession, engine: TemplateEngine,
                 gateway: GatewayClient, metrics: Metrics, clock: Callable[[], float] = time.time,
                 *, rng: random.Random | None = None) -> None:
        self._store = store
        self._session = session
        self._engine = engine
        self._gateway = gateway
        self._metrics = metrics
        self._failures = FailureStreak(log, "delivery: a round over the outbox",
                                       metrics.worker_failures.labels(worker="delivery"))
        self._clock = clock
        self._rng = rng or random.Random()
        self._lanes = [_webhook_lane(hook) for hook in config.webhooks.values()]
        self._lanes.append(_Lane("tag", None, TAG_LANE, TAG_CONCURRENCY, DEFAULT_RETRY))
        self._writer = _RecordWriter(store, clock)
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._started = 0
        self._counters: dict[tuple[str, Outcome], Any] = {}
        self._refreshed = -REFRESH

    def wake(self) -> None:
        """Look for due rows now (new rows were committed)."""
        for lane in self._lanes:
            lane.quiet_until = None
        self._wakeup.set()

    async def start(self) -> None:
        """Start delivering in the background."""
        await self._warn_held()
        self._loop = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop: attempts in flight get `grace` seconds to finish; the rest stay pending for the next start."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        for lane in self._lanes:
            lane.drop_waiting()
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._writer.drain()

    async def deliver_due_once(self) -> int:
        """Attempt every row due now once and wait until the attempts are recorded; returns how many were made."""
        started = self._started
        taken: set[int] = set()
        await self._refresh(force=True)
        busy = True
        while busy:
            newly = await self._dispatch(self._clock(), taken)
            taken.update(newly)
            if self._tasks:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            await self._writer.drain()
            busy = bool(newly or self._tasks)
        return self._started - started

    def in_flight(self, target: str) -> int:
        """How many attempts to `target` (a webhook name, or `tag`) are running."""
        return sum(lane.running for lane in self._lanes if lane.label == target)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._refresh()
                await self._dispatch(self._clock())
                delay = await self._idle_delay()
            except Exception as exc:
                # The loop is all that moves the outbox: it must outlive any one bad round.
                self._failures.failed(exc, STORE_BACKOFF, expected=isinstance(exc, StoreError))
                delay = STORE_BACKOFF
            else:
                self._failures.succeeded()
            if delay > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that meets a wake-up.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()

    async def _refresh(self, *, force: bool = False) -> None:
        """At most every REFRESH seconds, re-read the disabled targets and forget the known due times: the
        command line may have re-enabled a target or re-queued deliveries."""
        if not force and time.monotonic() - self._refreshed < REFRESH:
            return
        self._refreshed = time.monotonic()
        names = {row["name"] for row in await self._store.disabled_targets()}
        for lane in self._lanes:
            lane.quiet_until = None
            lane.disabled = lane.kind == "webhook" and lane.label in names
            if lane.disabled:
                lane.drop_waiting()

    async def _dispatch(self, now: float, skip: Collection[int] = ()) -> list[int]:
        """Take due rows into the lanes that have room and start what their limits allow; returns the ids taken."""
        taken: list[int] = []
        for lane in self._lanes:
            if lane.disabled or lane.paused_until > now:
                continue
            room = lane.room
            if room > 0 and (lane.quiet_until is None or lane.quiet_until <= now):
                exclude = lane.taken | set(skip)
                rows = await self._store.due_deliveries(
                    now, lane.kind, lane.target, lane.schedule[0], room, exclude)
                self._metrics.claims.labels(kind="delivery").inc(len(rows))
                for row in rows:
                    lane.taken.add(row["id"])
                    lane.waiting.append(_Due.of(row))
                    taken.append(row["id"])
                if len(rows) < room:
                    lane.quiet_until = await self._next_due(lane, exclude | lane.taken)
            self._start_waiting(lane)
        return taken

    async def _next_due(self, lane: _Lane, exclude: Collection[int]) -> float:
        due = await self._store.next_delivery_ts(lane.kind, lane.target, lane.schedule[0], exclude)
        return math.inf if due is None else due

    def _start_waiting(self, lane: _Lane) -> None:
        """Start workers for the waiting rows of an open lane, up to its concurrency limit."""
        if not lane.is_open(self._clock()):
            return
        for _ in range(min(lane.limit - lane.running, len(lane.waiting))):
            lane.running += 1
            task = asyncio.create_task(self._work(lane), name=f"delivery-{lane.label}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, lane: _Lane) -> None:
        """Attempt a lane's waiting rows one after the other while it stays open: one request at a time."""
        try:
            while lane.waiting and lane.is_open(self._clock()):
                row = lane.waiting.popleft()
                if lane.room > 0:
                    self._wakeup.set()
                self._started += 1
                await self._attempt(lane, row)
        finally:
            lane.running -= 1

    async def _idle_delay(self) -> float:
        """Seconds until an open lane with room has a row due (or its pause ends), at most MAX_IDLE."""
        delay = MAX_IDLE
        now = self._clock()
        for lane in self._lanes:
            if lane.disabled:
                continue
            if lane.waiting:
                # Waiting rows start when a running attempt ends (which wakes the loop) or the pause is over.
                if lane.paused_until > now:
                    delay = min(delay, lane.paused_until - now)
            elif lane.running < lane.limit:
                if lane.quiet_until is None:
                    lane.quiet_until = await self._next_due(lane, lane.taken)
                delay = min(delay, max(lane.quiet_until, lane.paused_until) - now)
        return max(delay, 0.0)

    async def _attempt(self, lane: _Lane, row: _Due) -> None:
        try:
            attempt = await self._try(lane, row)
        except BaseException:
            lane.taken.discard(row.id)  # cut short (stop): the row stays due
            raise
        now = self._clock()
        outcome, next_ts = plan_next(attempt, row.attempts + 1, lane.schedule, now, self._rng)
        self._adjust_lane(lane, attempt, outcome, next_ts, now)
        state = {Outcome.DELIVERED: DeliveryState.DELIVERED, Outcome.DEAD: DeliveryState.DEAD}.get(
            outcome, DeliveryState.PENDING)
        disable = lane.label if outcome is Outcome.DISABLED else None
        log_entry = AttemptLog(row.id, outcome.value, attempt.status, attempt.latency_ms, attempt.error,
                               attempt.response)
        record = _Record(row.id, state, next_ts, attempt.error, attempt.status, log_entry, disable)
        # The worker goes on with the next row while this outcome waits for the next commit.
        self._writer.submit(record, functools.partial(self._recorded, lane, row, attempt, outcome, next_ts, now))

    async def _try(self, lane: _Lane, row: _Due) -> Attempt:
        try:
            if lane.webhook is not None:
                return await self._post(lane, lane.webhook, row)
            return await self._tag(row)
        except Exception as exc:
            log.exception("delivery %d to %s: unexpected error", row.id, lane.label)
            return Attempt(error=f"internal error: {type(exc).__name__}")

    async def _post(self, lane: _Lane, webhook: WebhookConfig, row: _Due) -> Attempt:
        now = self._clock()
        try:
            body, content_type = self._render(webhook, row, now)
        except TemplateError as exc:
            # The template, not the receiver, is at fault: waiting will not help.
            return Attempt(error=f"template error: {exc}", permanent=True)
        headers = lane.headers.copy()
        headers.setdefault("Content-Type", content_type)
        headers.update(webhook_headers(row.event_id, int(now), body, lane.key))
        began = time.monotonic()
        try:
            async with self._session.post(webhook.url, data=body, headers=headers, timeout=lane.timeout,
                                          allow_redirects=False) as response:
                text = await _read_text(response)
                attempt = response_attempt(response.status, response.headers, text, self._clock())
        except TimeoutError:
            attempt = Attempt(error=f"no answer within {webhook.timeout:g}s")
        except aiohttp.ClientError as exc:
            attempt = Attempt(error=_client_error(exc))
        return dataclasses.replace(attempt, latency_ms=(time.monotonic() - began) * 1000)

    def _render(self, webhook: WebhookConfig, row: _Due, now: float) -> tuple[bytes, str]:
        """The body and Content-Type: the row's template, else the target's, else the event JSON."""
        template = row.spec.get("template") or webhook.template
        if template is None:
            return row.default_body().encode(), JSON_TYPE
        match = row.spec.get("match") or {}
        rendered = render_event_body(self._engine, template, row.event_json(), match,
                                     datetime.fromtimestamp(now, timezone.utc))
        return rendered.body.encode(), rendered.content_type

    async def _tag(self, row: _Due) -> Attempt:
        phone = row.spec.get("phone")
        if not phone or not row.target.isdigit():
            return Attempt(error="a tag delivery needs a phone number and a numeric tag id", permanent=True)
        try:
            await self._gateway.save_contact(phone, int(row.target), row.spec.get("name") or phone)
        except ApiError as exc:
            return Attempt(error=f"SmsGateway24 refused the contact: {exc.message}", permanent=True)
        except GatewayError as exc:
            return Attempt(error=f"SmsGateway24: {exc.message}")
        return Attempt()

    @staticmethod
    def _adjust_lane(lane: _Lane, attempt: Attempt, outcome: Outcome, next_ts: float, now: float) -> None:
        """What an attempt tells about its whole target: a pause (Retry-After), disabled (410), a retry due."""
        if attempt.retry_after is not None:
            lane.paused_until = max(lane.paused_until, now + min(attempt.retry_after, RETRY_AFTER_CAP))
        if outcome is Outcome.DISABLED:
            lane.disabled = True
            lane.drop_waiting()

    def _recorded(self, lane: _Lane, row: _Due, attempt: Attempt, outcome: Outcome, next_ts: float, now: float,
                  newly_disabled: bool, error: StoreError | None) -> None:
        """After the commit: count and log the outcome; a row whose outcome was not written stays due. The loop
        is woken: it may sleep on a delay reckoned while the lane was full or this row was still taken."""
        lane.taken.discard(row.id)
        self._wakeup.set()
        if error is not None:
            log.warning("delivery %d to %s: attempt not recorded (%s); it will be made again",
                        row.id, lane.label, error)
            lane.paused_until = max(lane.paused_until, now + STORE_BACKOFF)
            lane.quiet_until = None
            return
        if outcome is Outcome.RETRY and lane.quiet_until is not None:
            # Only now, with the row out of `taken`: a due time reckoned before the commit left this row out.
            lane.quiet_until = min(lane.quiet_until, next_ts)
        self._counter(lane.label, outcome).inc()
        _log_outcome(lane, row, attempt, outcome, row.attempts + 1, next_ts - now, newly_disabled)

    def _counter(self, target: str, outcome: Outcome) -> Any:
        """The `bridge_deliveries_total` child of a target and outcome (looked up once)."""
        counter = self._counters.get((target, outcome))
        if counter is None:
            counter = self._counters[target, outcome] = self._metrics.deliveries.labels(target, outcome.value)
        return counter

    async def _warn_held(self) -> None:
        """Say at start which rows wait for a disabled or unconfigured target."""
        for row in await self._store.disabled_targets():
            log.warning("webhook target %s is disabled (%s); its deliveries wait for "
                        "`sms-bridge replay --target %s`", row["name"], row["reason"], row["name"])
        known = {lane.label for lane in self._lanes if lane.kind == "webhook"}
        for row in await self._store.pending_deliveries_by_target():
            if row["kind"] == "webhook" and row["target"] not in known:
                log.warning("%d deliveries to webhook target %s wait: it is not in the configuration",
                            row["count"], row["target"])


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """One outbox row as `sms-bridge deliveries` shows it."""

    id: int
    event_id: str
    event_type: str
    kind: str
    target: str
    rule: str | None
    state: DeliveryState
    attempts: int
    next_attempt_ts: float | None  # None once delivered or dead
    last_error: str | None
    last_status: int | None
    target_disabled: bool

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object."""
        return {
            "id": self.id, "event_id": self.event_id, "event_type": self.event_type, "kind": self.kind,
            "target": self.target, "rule": self.rule, "state": str(self.state), "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_ts), "last_error": self.last_error,
            "last_status": self.last_status, "target_disabled": self.target_disabled,
        }


@dataclass(frozen=True, slots=True)
class Replayed:
    """What `replay` did: the re-queued row ids, the targets it re-enabled, and the asked-for ids it left
    alone with their state (None: no such delivery)."""

    requeued: tuple[int, ...]
    enabled: tuple[str, ...]
    skipped: tuple[tuple[int, DeliveryState | None], ...] = ()


async def list_deliveries(store: Store, *, failed_only: bool = False) -> list[DeliveryInfo]:
    """The outbox, oldest first; `failed_only`: dead rows and pending ones whose last attempt failed."""
    disabled = {row["name"] for row in await store.disabled_targets()}
    out = []
    for row in await store.list_deliveries(failed_only):
        state = DeliveryState(row["state"])
        out.append(DeliveryInfo(
            row["id"], row["event_id"], row["event_type"], row["kind"], row["target"], row["rule"], state,
            row["attempts"], row["next_attempt_ts"] if state is DeliveryState.PENDING else None,
            row["last_error"], row["last_status"], row["kind"] == "webhook" and row["target"] in disabled,
        ))
    return out


async def replay(store: Store, now: float, *, ids: Iterable[int] | None = None,
                 target: str | None = None) -> Replayed:
    """Re-queue failed deliveries (dead ones, and pending ones waiting to retry after a failed attempt: `ids`,
    else every failed one; only `target`'s when given), due at `now` with their attempts reset, and re-enable
    their webhook targets (and `target`). A pending one so is retried now instead of at its next attempt."""
    asked = None if ids is None else list(dict.fromkeys(ids))
    requeued, enabled = await store.replay_deliveries(now, asked, target)
    done = set(requeued)
    left = [i for i in asked or () if i not in done]
    states = {row["id"]: DeliveryState(row["state"]) for row in await store.delivery_states(left)}
    return Replayed(tuple(requeued), tuple(enabled), tuple((i, states.get(i)) for i in left))


def _webhook_lane(hook: WebhookConfig) -> _Lane:
    key = signing_key(hook.secret.reveal()) if hook.secret is not None else None
    headers = CIMultiDict({"User-Agent": USER_AGENT})
    headers.update(hook.headers)
    return _Lane("webhook", hook.name, hook.name, hook.concurrency, tuple(hook.retry), hook, key,
                 aiohttp.ClientTimeout(total=hook.timeout), headers)


async def _read_text(response: aiohttp.ClientResponse) -> str:
    """The start of the answer, read to the end (up to a bound) so the connection can be reused."""
    if response.content.at_eof():
        return ""
    if response.content_length is not None and response.content_length <= MAX_RESPONSE_BYTES:
        kept = (await response.read())[:KEPT_RESPONSE_CHARS]
    else:
        kept, read = b"", 0
        async for chunk in response.content.iter_chunked(16_384):
            kept += chunk[:KEPT_RESPONSE_CHARS - len(kept)]
            read += len(chunk)
            if read > MAX_RESPONSE_BYTES:
                break
    return " ".join(kept.decode(errors="replace").split())


def _client_error(exc: aiohttp.ClientError) -> str:
    """A failed request in words, without the URL (webhook URLs often carry a token)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.strerror or type(exc.os_error).__name__}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection error: {exc.strerror}"
    return f"request failed: {type(exc).__name__}"


def _log_outcome(lane: _Lane, row: _Due, attempt: Attempt, outcome: Outcome, attempts: int, wait: float,
                 newly_disabled: bool) -> None:
    what = f"delivery {row.id} of {row.event_id} to {lane.label}"
    if outcome is Outcome.DELIVERED:
        log.info("%s: delivered (attempt %d)", what, attempts)
    elif outcome is Outcome.RETRY:
        log.warning("%s: attempt %d of %d failed: %s; next in %.0fs",
                    what, attempts, len(lane.schedule), attempt.error, wait)
    elif outcome is Outcome.DEAD:
        log.error("%s: dead letter after %d attempts: %s; `sms-bridge replay %d` re-queues it",
                  what, attempts, attempt.error, row.id)
    elif newly_disabled:
        log.error("webhook target %s answered 410 Gone: it is disabled and its deliveries are kept, not sent, "
                  "until `sms-bridge replay --target %s`", lane.label, lane.label)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
