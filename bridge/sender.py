"""The send queue: accepted sends -> addsms / addalotofsms, each SMS handed to the upstream exactly once.

Life of a recipient row: `queued` -> `submitting` (an attempt is counted and committed before the call)
-> `submitted` (the upstream took it; its sms id is learned and a `messages` row lets the poller follow
its status), or `failed` (the upstream refused it), or `refused` (opt-out list, loop guard), or
`in_doubt` (the call may or may not have been applied: a timeout, or a crash while `submitting`).

Never sent twice: an in-doubt recipient is looked up upstream (`getallsms` with its `customerid`) before
anything else happens to it; only when the upstream does not have it is it queued again. The lookup waits
`in_doubt_after` (twice the client timeout). When the upstream answered the failed call (an HTTP 5xx, a
body that is not JSON) it had finished with it, so one lookup decides. When it did not answer (a timeout)
it may still be working on the call: a miss is looked up again, and the SMS is sent again only once
`resend_after` (at least 5 minutes) has passed since the call.

Never lost: every failure other than a refusal keeps the row and retries with exponential backoff.

One bad SMS never holds up another: a row whose send_at the upstream cannot be given fails before any call,
and an addalotofsms batch the upstream refuses (nothing of it stored) is sent again in halves, down to
single addsms calls, so only the SMS at fault fails, with the upstream's reason.

Correlation: `addalotofsms` returns no ids, so every SMS carries a `customerid` — the user's when the API
call gave one, else a random one the store drew for the recipient (never the row id, which every database
starts again at 1: another bridge on the same account would hand out the same ones) — and the ids are learned
from `getallsms` afterwards. A listed SMS is taken for a recipient only when its customerid, number and text
are the recipient's and it was created around the recipient's submission.

Learning ids costs no call of its own: every poll lists the recent window anyway, and `learn_listed` matches
that listing, in the poll's transaction, against the recipients still without an id. Only a recipient no poll
has taught within `learn_after` (polling fails, or the upstream listed it late) is looked up by the sender.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge import safety
from bridge.config import Config
from bridge.gateway import parse
from bridge.gateway.client import ApiError, GatewayClient, GatewayError, UpstreamUnavailable
from bridge.gateway.models import OutgoingSms, Sms
from bridge.logs import FailureStreak
from bridge.metrics import Metrics
from bridge.numbers import number_readings
from bridge.placement import FAILED_STATUSES, Placement, Wanted
from bridge.pool import EXHAUSTED
from bridge.store import NewSend, Row, Store, StoreError, Tx

log = logging.getLogger(__name__)

BATCH_SIZE = 100             # recipients per addalotofsms call
GROUP_RECIPIENTS = 5000      # recipients committed in one group transaction, at most
CLAIM_LIMIT = 500            # recipients claimed per transaction
MAX_BACKOFF = 300.0          # seconds between retries, at most
MATCH_SLACK = 600.0          # how far upstream clocks may be off when looking a send up by time
LEARN_FOR = 86400.0          # how long to keep asking the upstream for the id of a submitted SMS
LEARN_POLLS = 3              # polls that may teach a submitted SMS's id before the sender looks it up itself
ANSWER_TTL = 86400.0         # how long idempotency keys are kept
HOUSEKEEPING_EVERY = 600.0
IDLE_WAIT = 30.0             # longest sleep of the worker when nothing is due
ERROR_WAIT = 5.0
LOOKUP_CONCURRENCY = 8       # getallsms calls in flight when looking sends up one customerid at a time
STOP_GRACE = 10.0            # how long stop() lets an upstream call finish before cancelling it
RESEND_AFTER_MIN = 300.0     # an unanswered call's SMS missing upstream is sent again this long after, at least


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The answer to keep for an idempotency key, committed with the send it answers."""

    scope: str
    key: str
    request_hash: str
    status: int
    response: str


@dataclass(frozen=True, slots=True)
class _Recipient:
    """One recipient row with the fields of its send."""

    id: int
    send_id: str
    number: str
    attempts: int
    submitted_ts: float | None
    resend_ts: float | None
    correlation: int
    body: str
    device_id: int | None
    sim: int | None
    send_at: str | None
    urgent: bool
    customer_id: int | None
    send_device_id: int | None = None
    send_sim: int | None = None
    is_reply: bool = False
    placed: tuple[int, int] | None = None
    avoid: tuple[int, int] | None = None

    @classmethod
    def of(cls, row: Row) -> _Recipient:
        """The recipient of a `Tx.due_recipients` / `recipients_by_id` row."""
        return cls(row["id"], row["send_id"], row["number"], row["attempts"], row["submitted_ts"], row["resend_ts"],
                   row["correlation_id"], row["body"], row["device_id"], row["sim"], row["send_at"], bool(row["urgent"]), row["customer_id"],
                   row["send_device_id"], row["send_sim"], bool(row["is_reply"]),
                   None if row["member_device"] is None else (row["member_device"], row["sim"]),
                   None if row["avoid_device"] is None else (row["avoid_device"], row["avoid_sim"]))

    @property
    def correlation_id(self) -> int:
        """The `customerid` this SMS carries upstream."""
        return self.correlation if self.customer_id is None else self.customer_id

    @property
    def due_ts(self) -> float | None:
        """The scheduled send time (timetosend) in Unix seconds, if any."""
        return None if self.send_at is None else datetime.fromisoformat(self.send_at).timestamp()


@dataclass(slots=True)
class _Bucket:
    """A token bucket pacing one device: one SMS every `interval` seconds, at most `capacity` at once."""

    interval: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Take a token if one is free at `now`."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def next_token_ts(self, now: float) -> float:
        """When the next token will be free."""
        return now + (1 - self.tokens) * self.interval


@dataclass(slots=True)
class _Screened:
    """The verdicts on claimed recipients before any upstream call."""

    ready: list[_Recipient]
    refused: list[tuple[int, str | None, float]]
    failed: list[tuple[int, str | None, float]]
    deferred: list[tuple[int, str | None, float]]
    first_sends: list[tuple[str, str]]
    waiting: list[tuple[int, str | None, float]] = field(default_factory=list)


class Sender:
    """Drains the send queue to the upstream; `accept` queues sends with group commit."""

    def __init__(
        self,
        config: Config,
        store: Store,
        gateway: GatewayClient,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        *,
        batch_size: int = BATCH_SIZE,
        in_doubt_after: float | None = None,
        learn_after: float | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._gateway = gateway
        self._metrics = metrics
        self._failures = FailureStreak(log, "sender: a pass over the send queue",
                                       metrics.worker_failures.labels(worker="sender"))
        self._clock = clock
        self._batch_size = batch_size
        self._in_doubt_after = 2 * config.gateway.timeout if in_doubt_after is None else in_doubt_after
        self._resend_after = max(RESEND_AFTER_MIN, 4 * self._in_doubt_after)
        self._learn_after = LEARN_POLLS * config.poll.interval if learn_after is None else learn_after
        self._zone = ZoneInfo(config.gateway.timezone)
        self._placement = None if config.pool is None else Placement(config.pool, self._zone,
                                                                       config.poll.devices_interval)
        self._buckets: dict[int, _Bucket] = {}
        self._unlearned: dict[int, tuple[float, int]] = {}  # recipient id -> (next try, tries)
        self._waiting: set[int] = set()  # recipients known to wait for a usable pool member (logged once)
        self._incoming: list[tuple[NewSend, StoredAnswer | None, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._stopping = False
        self._recovered = False
        self._housekept = float("-inf")

    # --- accepting --------------------------------------------------------------------------------

    async def accept(self, send: NewSend, answer: StoredAnswer | None = None) -> None:
        """Queue `send` (and keep `answer` for its idempotency key); returns once both are committed.

        Concurrent callers share one transaction: while one commit runs, the next group gathers.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming.append((send, answer, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_incoming())
        await future

    async def stored_answer(self, scope: str, key: str) -> Row | None:
        """The answer kept for an idempotency key used within the last day: request_hash, status, response."""
        return await self._store.get_answer(scope, key, self._clock() - ANSWER_TTL)

    async def claim_key(self, scope: str, key: str) -> bool:
        """Mark an Idempotency-Key running in the database for this replica; False while another replica runs
        a request with it (or its answer became final meanwhile)."""
        now = self._clock()
        return await self._store.claim_key(scope, key, now, now - ANSWER_TTL)

    async def release_key(self, scope: str, key: str) -> None:
        """Drop this replica's running mark of a key whose request ended without a stored answer."""
        await self._store.release_key(scope, key)

    async def _commit_incoming(self) -> None:
        while self._incoming:
            group = self._take_group()
            try:
                async with self._store.transaction() as db:
                    now = self._clock()
                    await db.insert_sends([send for send, _, _ in group], now)
                    answers = [a for _, a, _ in group if a is not None]
                    if answers:
                        await db.save_answers(
                            [(a.scope, a.key, a.request_hash, a.status, a.response) for a in answers], now
                        )
            except Exception as exc:  # every waiting caller learns that its send was not stored
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in group:
                if not future.done():
                    future.set_result(None)
            self._metrics.sends.labels(outcome="accepted").inc(sum(len(s.recipients) for s, _, _ in group))
            self.wake()

    def _take_group(self) -> list[tuple[NewSend, StoredAnswer | None, asyncio.Future[None]]]:
        """The waiting sends for one transaction: all of them, up to GROUP_RECIPIENTS recipients (at least one)."""
        size, count = 0, 0
        for send, _, _ in self._incoming:
            size += len(send.recipients)
            if count and size > GROUP_RECIPIENTS:
                break
            count += 1
        group, self._incoming = self._incoming[:count], self._incoming[count:]
        return group

    # --- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start draining the queue in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop draining: an upstream call in flight gets `grace` seconds to finish, else it is cancelled
        and its rows, left `submitting`, are reconciled with the upstream on the next start."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)

    def wake(self) -> None:
        """Look at the queue now (new sends were committed)."""
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self.drain_once()
                wait = await self._idle_wait()
            except Exception as exc:
                self._failures.failed(exc, ERROR_WAIT, expected=isinstance(exc, StoreError))
                wait = ERROR_WAIT
            else:
                self._failures.succeeded()
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait)
            except TimeoutError:
                pass

    async def _idle_wait(self) -> float:
        now = self._clock()
        due = [now + IDLE_WAIT, self._housekept + HOUSEKEEPING_EVERY]
        next_due = await self._store.next_recipient_due()
        if next_due is not None:
            due.append(next_due)
        due.extend(at for at, _ in self._unlearned.values())
        return min(max(min(due) - now, 0.01), IDLE_WAIT)

    async def drain_once(self) -> int:
        """One pass: reconcile in-doubt sends, learn missing ids, submit everything due. Returns rows handled."""
        async with self._drain_lock:
            await self._recover()
            await self._housekeeping()
            handled = await self._reconcile_due()
            await self._learn_due()
            await self._fail_over()
            while True:
                claimed = await self._submit_due()
                handled += claimed
                if claimed < CLAIM_LIMIT:
                    return handled

    async def _recover(self) -> None:
        """Rows left `submitting` (no call is in flight between passes) are in doubt; after a start, submitted
        rows without an id are learned."""
        now = self._clock()
        async with self._store.transaction() as db:
            stranded = await db.recover_submitting(now + self._in_doubt_after, now)
        if stranded:
            self._metrics.claims_recovered.labels(kind="send").inc(stranded)
            log.warning("sender: %d send(s) were left mid-submission (the bridge stopped, or their outcome could "
                        "not be stored); they are reconciled with the upstream before any resend", stranded)
        if not self._recovered:
            for rid in await self._store.unlearned_recipient_ids(now - LEARN_FOR):
                self._unlearned[rid] = (now + self._learn_after, 0)
            self._recovered = True

    async def _housekeeping(self) -> None:
        now = self._clock()
        if now - self._housekept < HOUSEKEEPING_EVERY:
            return
        async with self._store.transaction() as db:
            await db.purge_expired(now - ANSWER_TTL, now - self._config.safety.loop_limit.per)
        self._housekept = now

    # --- submitting -------------------------------------------------------------------------------

    async def _submit_due(self) -> int:
        """Claim due queued rows, apply safety and pacing, then hand the ready ones to the upstream."""
        now = self._clock()
        async with self._store.transaction() as db:
            rows = [_Recipient.of(r) for r in await db.due_recipients("queued", now, CLAIM_LIMIT)]
            if not rows:
                return 0
            screened = await self._screen(db, rows, now)
            await db.set_recipients("refused", screened.refused, now)
            await db.set_recipients("failed", screened.failed, now)
            await db.set_recipients("queued", screened.deferred, now)
            await db.set_recipients("queued", screened.waiting, now)
            await db.mark_submitting([r.id for r in screened.ready], now)
            await db.log_sent(screened.first_sends, now)
        self._metrics.claims.labels(kind="send").inc(len(screened.ready))
        self._count("refused", len(screened.refused))
        self._note_waiting({rid for rid, _, _ in screened.waiting}, {r.id for r in rows})
        by_id = {r.id: r for r in rows}
        for rid, reason, _ in screened.refused:
            row = by_id[rid]
            log.info("sender: not sending %s to %s: %s", row.send_id, row.number, safety.Refusal(reason).message)
        self._count("failed", len(screened.failed))
        for call in self._calls(screened.ready):
            await self._submit(call)
        return len(rows)

    async def _screen(self, db: Tx, rows: list[_Recipient], now: float) -> _Screened:
        """Sort claimed rows into refused (opt-out, loop guard), failed (no device), deferred (pacing), ready."""
        limit = self._config.safety.loop_limit
        region = self._config.gateway.default_region
        readings = {r.id: number_readings(r.number, region) for r in rows}
        opted = await db.opted_out([number for numbers in readings.values() for number in numbers])
        hashes = {r.id: _body_hash(r.body) for r in rows}
        counts = await db.recent_sends([(number, hashes[r.id]) for r in rows if r.attempts == 0
                                        for number in readings[r.id]], now - limit.per)
        devices = await db.device_rows()
        plan = None if self._placement is None else await self._placement.plan(
            db, [readings[r.id][0] for r in rows], devices, now)
        out = _Screened([], [], [], [], [])
        for r in rows:
            wanted = None if plan is None else _wanted(r, readings[r.id][0])
            pooled = wanted is not None and plan is not None and plan.manages(wanted)
            device = r.device_id if r.device_id is not None else self._config.gateway.device_id
            if device is None and not pooled:
                out.failed.append((r.id, "no device: give device_id or set gateway.device_id", now))
                continue
            if opted.intersection(readings[r.id]):
                out.refused.append((r.id, str(safety.Refusal.OPTED_OUT), now))
                continue
            problem = self._send_at_problem(r)
            if problem is not None:
                out.failed.append((r.id, problem, now))
                continue
            body_hash = hashes[r.id]
            sent_key = (readings[r.id][0], body_hash)
            recent = sum(counts.get((number, body_hash), 0) for number in readings[r.id])
            if r.attempts == 0 and not safety.loop_guard_allows(recent, limit):
                out.refused.append((r.id, str(safety.Refusal.LOOP_GUARD), now))
                continue
            if pooled:
                assert plan is not None and wanted is not None
                member = plan.place(wanted)
                if member is None:
                    out.waiting.append((r.id, EXHAUSTED, plan.wake_at))
                    continue
                device = plan.upstream_device(member)
                r = replace(r, device_id=device, sim=member.sim)
            assert device is not None
            bucket = self._bucket(device, _sms_delay(devices, device), now)
            if bucket is not None and not bucket.take(now):
                out.deferred.append((r.id, None, bucket.next_token_ts(now)))
                continue
            if r.attempts == 0:
                counts[sent_key] = counts.get(sent_key, 0) + 1
                out.first_sends.append(sent_key)
            if plan is not None and wanted is not None:
                plan.take(wanted, (device, r.sim if r.sim is not None else self._config.gateway.sim))
            out.ready.append(r)
        if plan is not None:
            await plan.commit(db, now)
        return out

    def _note_waiting(self, waiting: set[int], claimed: set[int]) -> None:
        """Log recipients that started waiting for a usable pool member, once each."""
        new = waiting - self._waiting
        self._waiting = (self._waiting - claimed) | waiting
        if new:
            log.warning("sender: %d send(s) wait: no pool member is usable (offline, or at its daily or monthly "
                        "limit); they go out once one is", len(new))

    def _send_at_problem(self, r: _Recipient) -> str | None:
        """Why the upstream cannot be given this row's send_at, or None (a row the API did not check, or older)."""
        if r.send_at is None:
            return None
        try:
            parse.format_time(datetime.fromisoformat(r.send_at), self._zone)
        except ValueError as exc:
            return f"send_at: {exc}"
        return None

    def _bucket(self, device: int, sms_delay: float | None, now: float) -> _Bucket | None:
        """The bucket pacing `device`, or None when nothing paces it; a bucket whose pace changed (the phone's
        delaybetweeneachsms was set or changed) keeps the tokens it had, up to its new capacity."""
        pace = _pace(self._config.gateway.max_per_minute, sms_delay)
        if pace is None:
            self._buckets.pop(device, None)
            return None
        interval, capacity = pace
        bucket = self._buckets.get(device)
        if bucket is None or (bucket.interval, bucket.capacity) != pace:
            tokens = capacity if bucket is None else min(capacity, bucket.tokens)
            bucket = self._buckets[device] = _Bucket(interval, capacity, tokens, now)
        return bucket

    def _calls(self, ready: list[_Recipient]) -> list[list[_Recipient]]:
        """Upstream calls: one addsms per user-supplied customer id, the rest in addalotofsms batches."""
        own = [[r] for r in ready if r.customer_id is not None]
        rest = [r for r in ready if r.customer_id is None]
        return own + [rest[i:i + self._batch_size] for i in range(0, len(rest), self._batch_size)]

    async def _submit(self, call: list[_Recipient]) -> None:
        """One addsms (a single row) or addalotofsms call, and its outcome recorded."""
        method = "addsms" if len(call) == 1 else "addalotofsms"
        sms_id: int | None = None
        try:
            if len(call) == 1:
                sms_id = await self._gateway.add_sms(self._outgoing(call[0]))
            else:
                await self._gateway.add_many_sms([self._outgoing(r) for r in call])
        except ApiError as exc:
            if len(call) == 1:
                await self._call_failed(method, call, exc)
                return
            # Refused, so nothing of it was stored: its halves go apart until the SMS at fault fails alone.
            log.info("sender: addalotofsms refused %d SMS (%s); sending them in smaller calls", len(call), exc.message)
            middle = len(call) // 2
            await self._submit(call[:middle])
            await self._submit(call[middle:])
            return
        except Exception as exc:
            await self._call_failed(method, call, exc)
            return
        self._count("submitted", len(call))
        if sms_id is not None:
            await self._record_learned({call[0].id: (call[0], sms_id, None)}, [])
            log.info("sender: addsms took %s to %s as sms %d", call[0].send_id, call[0].number, sms_id)
            return
        log.info("sender: addalotofsms took %d SMS", len(call))
        await self._record_learned({}, call)

    async def _call_failed(self, method: str, rows: list[_Recipient], exc: Exception) -> None:
        """Record a failed upstream call: refused -> failed; maybe applied -> in doubt; else retry later."""
        now = self._clock()
        kind, state = _classify(exc)
        self._metrics.upstream_errors.labels(method=method, kind=kind).inc()
        reason = exc.message if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
        if state == "in_doubt":
            answered = isinstance(exc, UpstreamUnavailable) and exc.answered
            resend_ts = now if answered else now + self._resend_after
            doubts = [(r.id, f"outcome unknown, reconciling: {reason}", now + self._in_doubt_after, resend_ts)
                      for r in rows]
            async with self._store.transaction() as db:
                await db.set_in_doubt(doubts, now)
        else:
            if state == "failed":
                changes = [(r.id, reason, now) for r in rows]
            else:
                changes = [(r.id, f"will retry: {reason}", now + _backoff(r.attempts + 1)) for r in rows]
            async with self._store.transaction() as db:
                await db.set_recipients(state, changes, now)
                if self._placement is not None:  # not applied upstream: the members' counts are taken back
                    await db.uncount_pool_sends(self._placement.members_of((r.device_id, r.sim) for r in rows),
                                                self._placement.day(now))
        self._count(state, len(rows))
        if kind == "bug":
            log.error("sender: %s failed unexpectedly; the send is reconciled before any retry", method,
                      exc_info=exc)
        else:
            log.warning("sender: %s for %d recipient(s): %s -> %s", method, len(rows), reason, state)

    def _outgoing(self, r: _Recipient) -> OutgoingSms:
        gateway = self._config.gateway
        return OutgoingSms(
            to=r.number,
            body=r.body,
            device_id=r.device_id if r.device_id is not None else gateway.device_id,  # type: ignore[arg-type]
            sim=r.sim if r.sim is not None else gateway.sim,
            time_to_send=None if r.send_at is None else datetime.fromisoformat(r.send_at),
            customer_id=r.correlation_id,
            urgent=r.urgent,
        )

    # --- failover ---------------------------------------------------------------------------------

    async def _fail_over(self) -> None:
        """Queue once more, for another member, each pool-placed recipient whose SMS has a final failed status;
        the failed attempt is kept (and its status event fires as for any SMS)."""
        if self._placement is None or not self._placement.fails_over:
            return
        now = self._clock()
        async with self._store.transaction() as db:
            rows = await db.failover_candidates(FAILED_STATUSES, now - self._config.poll.lookback, CLAIM_LIMIT)
            await db.fail_over([(r["id"], r["sms_id"], r["device_id"], r["sim"], _new_correlation_id())
                                for r in rows], now)
        for r in rows:
            log.warning("sender: sms %d to %s failed on device %d SIM %d (status %d); sending it once more on "
                        "another pool member", r["sms_id"], r["number"], r["device_id"], r["sim"], r["status"])
        self._count("failed_over", len(rows))

    # --- learning ids and reconciling -------------------------------------------------------------

    async def _reconcile_due(self) -> int:
        """Look up in-doubt rows upstream: found -> submitted; absent -> queued again (sent once more)."""
        now = self._clock()
        async with self._store.reading() as db:
            rows = [_Recipient.of(r) for r in await db.due_recipients("in_doubt", now, CLAIM_LIMIT)]
        if not rows:
            return 0
        try:
            found = await self._find_upstream(rows)
        except GatewayError as exc:
            self._metrics.upstream_errors.labels(method="getallsms", kind=_classify(exc)[0]).inc()
            later = [(r.id, f"outcome unknown, reconciling: {exc.message}", now + _backoff(r.attempts)) for r in rows]
            async with self._store.transaction() as db:
                await db.set_recipients("in_doubt", later, now)
            return len(rows)
        missing = [r for r in rows if r.id not in found]
        gone = [r for r in missing if r.resend_ts is None or r.resend_ts <= now]
        later = [(r.id, "outcome unknown: not listed upstream yet, looking again",
                  min(r.resend_ts, now + self._in_doubt_after), r.resend_ts)
                 for r in missing if r.resend_ts is not None and r.resend_ts > now]
        self._count("submitted", len(found))
        self._count("requeued", len(gone))
        await self._record_learned({r.id: (r, found[r.id].id, found[r.id]) for r in rows if r.id in found}, [],
                                   requeue=gone, doubts=later)
        if gone:
            log.warning("sender: %d in-doubt send(s) never reached the upstream; queued again", len(gone))
        return len(rows)

    async def _learn_due(self) -> None:
        """Ask the upstream again for ids of submitted rows that were not listed right after addalotofsms."""
        now = self._clock()
        due = [rid for rid, (at, _) in self._unlearned.items() if at <= now]
        if not due:
            return
        async with self._store.reading() as db:
            rows = [_Recipient.of(r) for r in await db.recipients_by_id(due)]
        for rid in set(due) - {r.id for r in rows}:
            del self._unlearned[rid]
        found = await self._find_or_nothing(rows)
        await self._record_learned({r.id: (r, found[r.id].id, found[r.id]) for r in rows if r.id in found},
                                   [r for r in rows if r.id not in found])

    async def _find_or_nothing(self, rows: list[_Recipient]) -> dict[int, Sms]:
        """`_find_upstream`, with a failed lookup meaning "not found yet"."""
        try:
            return await self._find_upstream(rows)
        except GatewayError as exc:
            self._metrics.upstream_errors.labels(method="getallsms", kind=_classify(exc)[0]).inc()
            log.warning("sender: cannot list sent SMS to learn their ids yet: %s", exc.message)
            return {}

    async def _find_upstream(self, rows: Sequence[_Recipient]) -> dict[int, Sms]:
        """The upstream message of each row that has one: first one listing per device, then per customerid."""
        found: dict[int, Sms] = {}
        taken: set[int] = set()
        by_device: dict[int | None, list[_Recipient]] = {}
        for r in rows:
            by_device.setdefault(r.device_id if r.device_id is not None else self._config.gateway.device_id,
                                 []).append(r)
        for device, group in by_device.items():
            listing = await self._gateway.get_all_sms(device_id=device, begin=self._since(group))
            async with self._store.reading() as db:
                await self._match(db, group, listing, found, taken)
        rest = [r for r in rows if r.id not in found]
        limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def by_customer_id(r: _Recipient) -> list[Sms]:
            async with limit:
                return await self._gateway.get_all_sms(customer_id=r.correlation_id, begin=self._since([r]))

        listings = await asyncio.gather(*map(by_customer_id, rest), return_exceptions=True)
        for listing in listings:
            if isinstance(listing, BaseException):
                raise listing
        async with self._store.reading() as db:
            for r, listing in zip(rest, listings):
                await self._match(db, [r], listing, found, taken)
        return found

    def _since(self, rows: Iterable[_Recipient]) -> datetime:
        first = min((r.submitted_ts for r in rows if r.submitted_ts is not None), default=self._clock())
        return datetime.fromtimestamp(first - MATCH_SLACK, self._zone)

    async def learn_listed(self, db: Tx, listed: Sequence[Sms], now: float) -> int:
        """Learn, in the caller's transaction, the ids of submitted SMS from a listing fetched anyway (a poll's
        window): each matched recipient gets its id and a `messages` row. Returns how many were learned."""
        listed_ids = {sms.customer_id for sms in listed if sms.customer_id is not None and not sms.is_incoming}
        if not listed_ids:
            return 0
        rows = [_Recipient.of(r) for r in await db.unlearned_recipients(now - LEARN_FOR, listed_ids)]
        if not rows:
            return 0
        found: dict[int, Sms] = {}
        await self._match(db, rows, listed, found, set())
        await self._write_learned(db, {r.id: (r, found[r.id].id, found[r.id]) for r in rows if r.id in found}, now)
        return len(found)

    async def _match(self, db: Tx, rows: Iterable[_Recipient], listing: list[Sms],
                     found: dict[int, Sms], taken: set[int]) -> None:
        """Pair rows with listed messages: same customerid, number and text, created around the row's submission."""
        rows = [r for r in rows if r.id not in found]
        wanted = {r.correlation_id for r in rows}
        by_customer: dict[int, list[Sms]] = {}
        for sms in listing:
            if sms.customer_id in wanted and not sms.is_incoming:
                by_customer.setdefault(sms.customer_id, []).append(sms)
        if not by_customer:
            return
        taken |= await db.assigned_sms_ids([s.id for group in by_customer.values() for s in group])
        for r in rows:
            for sms in sorted(by_customer.get(r.correlation_id, ()), key=lambda s: s.id):
                if sms.id in taken or not self._is_own(r, sms):
                    continue
                found[r.id] = sms
                taken.add(sms.id)
                break

    def _is_own(self, r: _Recipient, sms: Sms) -> bool:
        """True when a listed SMS with `r`'s customerid is `r`'s: its number and text, created when `r` was
        handed over (give or take the clocks' slack; an unanswered call may be applied until `resend_after`)."""
        if not _same_number(sms.number, r.number) or not _same_text(sms.body, r.body):
            return False
        if r.submitted_ts is None:
            return True
        created = sms.created.timestamp()
        return r.submitted_ts - MATCH_SLACK <= created <= r.submitted_ts + self._resend_after + MATCH_SLACK

    async def _record_learned(
        self,
        learned: dict[int, tuple[_Recipient, int, Sms | None]],
        unknown: list[_Recipient],
        requeue: Sequence[_Recipient] = (),
        doubts: Sequence[tuple[int, str, float, float]] = (),
    ) -> None:
        """Commit, in one transaction, what the upstream took: ids learned (with `messages` rows), ids still
        unknown, rows to resend, and rows still in doubt (as `Tx.set_in_doubt` takes them)."""
        now = self._clock()
        retry: dict[int, tuple[float, int]] = {}
        for r in unknown:
            if r.submitted_ts is not None and now - r.submitted_ts > LEARN_FOR:
                continue
            if r.id in self._unlearned:
                tries = self._unlearned[r.id][1] + 1
                retry[r.id] = (now + _backoff(tries), tries)
            else:  # just handed over: the next polls list it
                retry[r.id] = (now + self._learn_after, 0)
        async with self._store.transaction() as db:
            await self._write_learned(db, learned, now)
            await db.mark_submitted([(rid, None, at) for rid, (at, _) in retry.items()], now)
            await db.set_recipients("queued", [(r.id, None, now) for r in requeue], now)
            await db.set_in_doubt(doubts, now)
        for rid in learned:
            self._unlearned.pop(rid, None)
        for r in unknown:
            self._unlearned.pop(r.id, None)
        self._unlearned.update(retry)

    async def _write_learned(self, db: Tx, learned: dict[int, tuple[_Recipient, int, Sms | None]],
                             now: float) -> None:
        """Store learned ids: the recipients' sms ids, and `messages` rows so the poller follows their status."""
        if not learned:
            return
        await db.mark_submitted([(rid, sms_id, now) for rid, (_, sms_id, _) in learned.items()], now)
        await db.insert_messages([self._message_row(r, sms_id, sms, now) for r, sms_id, sms in learned.values()])

    def _message_row(self, r: _Recipient, sms_id: int, sms: Sms | None, now: float) -> tuple[object, ...]:
        """A MESSAGE_COLUMNS row: status pending, so the poller reports every change from here on."""
        created = sms.created if sms is not None else datetime.fromtimestamp(now, self._zone)
        gateway = self._config.gateway
        return (sms_id, "out", sms.number if sms is not None else r.number, r.body,
                r.device_id if r.device_id is not None else gateway.device_id,
                r.sim if r.sim is not None else gateway.sim, 1, r.correlation_id,
                created.isoformat(), created.timestamp(), now, r.due_ts)

    # --- metrics ----------------------------------------------------------------------------------

    def _count(self, outcome: str, n: int) -> None:
        if n:
            self._metrics.sends.labels(outcome=outcome).inc(n)


def _classify(exc: BaseException) -> tuple[str, str]:
    """(metric kind, next recipient state) for a failed upstream call."""
    if isinstance(exc, ApiError):
        return "api", "failed"
    if isinstance(exc, UpstreamUnavailable):
        return "unavailable", "in_doubt" if exc.maybe_applied else "queued"
    if isinstance(exc, GatewayError):
        return "auth", "queued"
    return "bug", "in_doubt"


def _pace(per_minute: int | None, sms_delay: float | None) -> tuple[float, float] | None:
    """A device's pace as (seconds between two SMS, SMS at once): the stricter of `gateway.max_per_minute` (a
    minute's worth at once) and the phone's own delaybetweeneachsms (one at a time); None when neither is set."""
    paces = ([(60 / per_minute, float(per_minute))] if per_minute else []) + ([(sms_delay, 1.0)] if sms_delay else [])
    if not paces:
        return None
    return max(interval for interval, _ in paces), min(capacity for _, capacity in paces)


def _sms_delay(devices: Mapping[int, Row], device: int) -> float | None:
    """The phone's own delaybetweeneachsms as the last device check stored it (None: not set, or not known)."""
    row = devices.get(device)
    return None if row is None else row["sms_delay"]


def _wanted(r: _Recipient, number: str) -> Wanted:
    """What the pool needs of a claimed recipient; `number` is its likeliest reading."""
    return Wanted(r.id, number, r.send_device_id, r.send_sim, r.is_reply, r.placed, r.avoid)


def _new_correlation_id() -> int:
    """A fresh random customerid (the upstream's int range) for a recipient's next attempt."""
    return random.randint(1, 2**31 - 1)


def _backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, 4, … capped), with up to 10% jitter."""
    return min(2.0 ** max(attempt - 1, 0), MAX_BACKOFF) * random.uniform(1.0, 1.1)


def _body_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _same_text(listed: str, ours: str) -> bool:
    """True when the upstream's copy of a text is ours (it may trim it and turn CRLF into LF)."""
    return _comparable_text(listed) == _comparable_text(ours)


def _comparable_text(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _same_number(listed: str, ours: str) -> bool:
    """True when the upstream's spelling of a number is ours (it keeps what it was given, maybe national)."""
    a, b = _digits(listed), _digits(ours)
    if a == b:
        return True
    a = a.lstrip("0")
    return len(a) >= 6 and b.endswith(a)

