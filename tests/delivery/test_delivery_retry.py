"""Retries, Retry-After, dead letters, replay and 410 Gone, driven by a movable clock."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timezone
from email.utils import format_datetime

from delivery_support import outbox, queue_webhook, target
from ports import free_port
from webhook_sink import Reply

from bridge.config import Secret, WebhookConfig
from bridge.delivery import Attempt, Outcome, parse_retry_after, plan_next, replay


async def test_failing_target_gets_the_same_webhook_id_until_it_succeeds(sink, store, make_worker, clock):
    """A target failing three times gets the event with the same webhook-id each time, then takes it."""
    worker = make_worker(target(sink, retry=(0, 5, 60, 60)))
    sink.answer("/crm", *[Reply(500)] * 3)
    event = await queue_webhook(store, clock())
    for _ in range(4):
        assert await worker.deliver_due_once() == 1
        clock.advance(70)
    assert [r.webhook_id for r in sink.requests("/crm")] == [event.id] * 4
    assert sink.delivered("/crm") == {event.id: 1}
    [row] = await outbox(store)
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 4, 200)


async def test_a_retry_waits_its_delay_plus_at_most_ten_percent(sink, store, make_worker, clock):
    """After a failed attempt the row is due again between delay and delay + 10% later, not before."""
    worker = make_worker(target(sink, retry=(0, 300)))
    sink.answer("/crm", Reply(503))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert clock() + 300 <= row["next_attempt_ts"] <= clock() + 330
    clock.advance(299)
    assert await worker.deliver_due_once() == 0


def test_jitter_stays_within_ten_percent():
    """plan_next never schedules a retry earlier than its delay nor more than 10% later."""
    rng = random.Random(7)
    delays = [plan_next(Attempt(error="x"), 1, (0, 100), 0.0, rng)[1] for _ in range(1000)]
    assert 100 <= min(delays) and max(delays) <= 110


async def test_the_first_delay_of_the_schedule_applies_before_attempt_one(sink, store, make_worker, clock):
    """With retry [30s, …] a new row is first attempted 30 seconds after it was queued."""
    worker = make_worker(target(sink, retry=(30, 5)))
    await queue_webhook(store, clock())
    assert await worker.deliver_due_once() == 0
    clock.advance(30)
    assert await worker.deliver_due_once() == 1


async def test_retry_after_seconds_on_429_is_honoured(sink, store, make_worker, clock):
    """A 429 with `Retry-After: 120` puts the next attempt at least 120 seconds away."""
    worker = make_worker(target(sink, retry=(0, 5, 5)))
    sink.answer("/crm", Reply(429, headers={"Retry-After": "120"}))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert row["next_attempt_ts"] >= clock() + 120
    assert (row["state"], row["last_status"]) == ("pending", 429)


async def test_retry_after_pauses_the_whole_target(sink, store, make_worker, clock):
    """While a 503's Retry-After runs, other rows to the same target wait too."""
    worker = make_worker(target(sink, retry=(0, 5, 5), concurrency=1))
    sink.answer("/crm", Reply(503, headers={"Retry-After": "60"}))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    await queue_webhook(store, clock())
    clock.advance(30)
    assert await worker.deliver_due_once() == 0
    clock.advance(31)
    assert await worker.deliver_due_once() == 2


def test_retry_after_as_an_http_date():
    """`Retry-After` given as an HTTP date counts from the clock's now."""
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    later = format_datetime(datetime(2026, 11, 24, 10, 2, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(later, now) == 120.0
    assert parse_retry_after("soon", now) is None


def test_retry_after_is_capped():
    """A Retry-After of days is obeyed for at most six hours."""
    outcome, due = plan_next(Attempt(error="HTTP 429", retry_after=864_000), 1, (0, 5), 0.0, random.Random(1))
    assert outcome is Outcome.RETRY and due == 6 * 3600


async def test_dead_letter_after_the_last_try_then_replay_delivers(sink, store, make_worker, clock, metrics):
    """After the last scheduled try the row is dead; `replay` re-queues it and it is delivered."""
    worker = make_worker(target(sink, retry=(0, 5)))
    sink.answer("/crm", *[Reply(500)] * 2)
    event = await queue_webhook(store, clock())
    await worker.deliver_due_once()
    clock.advance(6)
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("dead", 2)
    assert metrics.registry.get_sample_value("bridge_deliveries_total", {"target": "crm", "outcome": "dead"}) == 1
    clock.advance(3600)
    assert await worker.deliver_due_once() == 0

    replayed = await replay(store, clock(), ids=[row["id"]])
    assert replayed.requeued == (row["id"],)
    assert await worker.deliver_due_once() == 1
    assert sink.delivered("/crm") == {event.id: 1}
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("delivered", 1)


async def test_gone_disables_the_target_and_nothing_more_is_sent(sink, store, make_worker, clock):
    """A 410 disables the target: later deliveries to it are kept pending and not sent."""
    worker = make_worker(target(sink))
    sink.answer("/crm", Reply(410))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    await queue_webhook(store, clock())
    clock.advance(3600)
    assert await worker.deliver_due_once() == 0
    assert len(sink.requests("/crm")) == 1
    assert [r["state"] for r in await outbox(store)] == ["pending", "pending"]
    [disabled] = await store.disabled_targets()
    assert (disabled["name"], disabled["reason"]) == ("crm", "HTTP 410 Gone")


async def test_replaying_a_target_enables_it_and_sends_what_it_kept(sink, store, make_worker, clock):
    """`replay --target` re-enables a disabled target and its kept deliveries go out."""
    worker = make_worker(target(sink))
    sink.answer("/crm", Reply(410))
    first = await queue_webhook(store, clock())
    await worker.deliver_due_once()
    second = await queue_webhook(store, clock())
    assert (await replay(store, clock(), target="crm")).enabled == ("crm",)
    assert await worker.deliver_due_once() == 2
    assert sink.delivered("/crm") == {first.id: 1, second.id: 1}


async def test_gone_is_logged_loudly_once(sink, store, make_worker, clock, caplog):
    """Two deliveries meeting a 410 together log the disabling once, at ERROR."""
    worker = make_worker(target(sink, concurrency=2))
    sink.answer("/crm", *[Reply(410)] * 2)
    await queue_webhook(store, clock())
    await queue_webhook(store, clock())
    with caplog.at_level(logging.INFO, logger="bridge.delivery"):
        await worker.deliver_due_once()
    gone = [r for r in caplog.records if "410" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.ERROR]


async def test_connection_refused_is_retried(store, make_worker, clock):
    """A target nobody listens on is retried later, with the reason recorded."""
    port = free_port()
    worker = make_worker(WebhookConfig(name="crm", url=f"http://127.0.0.1:{port}/hook"))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert row["last_error"].startswith("cannot connect")


async def test_a_timeout_is_retried(sink, store, make_worker, clock):
    """A target that does not answer within its timeout is retried."""
    worker = make_worker(target(sink, timeout=0.2))
    sink.hold("/crm")
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["last_error"]) == ("pending", "no answer within 0.2s")


async def test_a_redirect_is_retried_not_followed(sink, store, make_worker, clock):
    """A 3xx counts as a failure to retry; the worker does not follow it."""
    worker = make_worker(target(sink))
    sink.answer("/crm", Reply(302, headers={"Location": f"{sink.url}/elsewhere"}))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["last_status"]) == ("pending", 302)
    assert sink.requests("/elsewhere") == []


async def test_a_client_error_is_retried_with_the_answer_kept(sink, store, make_worker, clock):
    """A 400 is retried and the start of the receiver's answer is kept as the last error."""
    worker = make_worker(target(sink))
    sink.answer("/crm", Reply(400, body="missing field: phone"))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["last_error"]) == ("pending", "HTTP 400: missing field: phone")


async def test_secrets_never_reach_logs_or_the_outbox(sink, store, make_worker, clock, caplog):
    """Neither the signing secret, a header value nor a token in the URL appears in logs or last_error."""
    worker = make_worker(WebhookConfig(
        name="crm", url=f"{sink.url}/crm?key=url-t0ken", secret=Secret("whsec_czNjcmV0LXNpZ25pbmc="),
        headers={"Authorization": "Bearer h3ader-token"}, retry=(0, 5)))
    sink.answer("/crm", *[Reply(500, body="nope")] * 2)
    await queue_webhook(store, clock())
    with caplog.at_level(logging.DEBUG):
        await worker.deliver_due_once()
        clock.advance(6)
        await worker.deliver_due_once()
    recorded = caplog.text + repr(await outbox(store))
    for secret in ("whsec_czNjcmV0LXNpZ25pbmc=", "czNjcmV0LXNpZ25pbmc=", "h3ader-token", "url-t0ken"):
        assert secret not in recorded
    assert "dead letter" in caplog.text


async def test_outcomes_are_counted_per_target(sink, store, make_worker, clock, metrics):
    """bridge_deliveries_total counts each attempt by target and outcome."""
    worker = make_worker(target(sink, retry=(0, 5)))
    sink.answer("/crm", Reply(500))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    clock.advance(6)
    await worker.deliver_due_once()

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value("bridge_deliveries_total", {"target": "crm", "outcome": outcome})

    assert (count("retry"), count("delivered")) == (1, 1)


async def test_every_attempt_is_kept_with_its_status_latency_and_answer(sink, store, make_worker, clock):
    """Each attempt of a delivery is kept in order with its outcome, HTTP status, latency and answer's start."""
    worker = make_worker(target(sink, retry=(0, 5)))
    sink.answer("/crm", Reply(500, body="database <down>"))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    clock.advance(10)
    await worker.deliver_due_once()
    rows = await store.fetch_all(
        "SELECT outcome, status, error, response, latency_ms FROM delivery_attempts ORDER BY id")
    assert [(r["outcome"], r["status"], r["response"]) for r in rows] == \
        [("retry", 500, "database <down>"), ("delivered", 200, "")]
    assert rows[0]["error"] == "HTTP 500: database <down>"
    assert all(r["latency_ms"] is not None and 0 <= r["latency_ms"] < 5000 for r in rows)
