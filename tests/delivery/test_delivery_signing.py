"""Webhook requests: body, Standard Webhooks headers and signatures checked with the reference verifier."""

from __future__ import annotations

import base64
import json

from delivery_support import add_event, inbound_event, queue, queue_webhook, target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import __version__
from bridge.config import Secret
from bridge.store import NewDelivery
from bridge.templating import to_json

WHSEC = "whsec_" + base64.b64encode(b"a key of thirty-two bytes, ok?!!").decode()


async def test_signature_verifies_with_the_reference_library(sink, store, make_worker, clock):
    """A `whsec_` secret signs so that standardwebhooks' Webhook(secret).verify accepts the request."""
    worker = make_worker(target(sink, secret=Secret(WHSEC)))
    event = await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.verified(WHSEC) == event.to_json("info")


async def test_a_bare_base64_secret_signs_as_the_reference_library_reads_it(sink, store, make_worker, clock):
    """A secret without the `whsec_` prefix is base64 too, as the reference verifier decodes it."""
    bare = "cGxhaW4tc2hhcmVkLXNlY3JldA=="
    worker = make_worker(target(sink, secret=Secret(bare)))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    request.verified(bare)


async def test_no_secret_means_no_signature_header(sink, store, make_worker, clock):
    """Without a secret the request carries webhook-id and webhook-timestamp but no webhook-signature."""
    worker = make_worker(target(sink))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert "webhook-signature" not in {k.lower() for k in request.headers}
    assert request.headers["webhook-timestamp"] == str(int(clock()))


async def test_default_body_is_the_event_json_with_its_rule(sink, store, make_worker, clock):
    """Without a template the body is exactly the event JSON with `rule` set, as application/json."""
    worker = make_worker(target(sink))
    event = await queue_webhook(store, clock(), rule="info")
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.body.decode() == to_json(event.to_json("info"))
    assert request.headers["Content-Type"] == "application/json"
    assert request.webhook_id == event.id


_texts = st.one_of(st.text(max_size=40), st.sampled_from(('"rule":null', '{"rule":null,"x":1}', '\\"', "é\u2028")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_texts, sender=_texts, rule=st.one_of(st.none(), _texts))
async def test_default_body_is_the_event_json_whatever_the_text(sink, store, make_worker, clock, body, sender, rule):
    """Any SMS text, sender and rule name come out as exactly the event JSON with that rule, nothing else changed."""
    worker = make_worker(target(sink))
    event = inbound_event(body=body, sender=sender)
    await add_event(store, event, clock())
    await queue(store, clock(), NewDelivery(event.id, "webhook", "crm", rule, {}))
    await worker.deliver_due_once()
    [request] = [r for r in sink.requests("/crm") if r.webhook_id == event.id]
    assert request.body.decode() == to_json(event.to_json(rule))


async def test_an_event_stored_in_another_spelling_is_delivered_as_the_event_json(sink, store, make_worker, clock):
    """An event kept as spaced-out JSON (not the compact form written today) still goes out compact, with its rule."""
    worker = make_worker(target(sink))
    event = inbound_event()
    await add_event(store, event, clock(), payload=json.dumps(event.to_json(), indent=1))
    await queue(store, clock(), NewDelivery(event.id, "webhook", "crm", "info", {}))
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.body.decode() == to_json(event.to_json("info"))


async def test_configured_headers_and_user_agent_are_sent(sink, store, make_worker, clock):
    """The target's headers and a `smsgateway24-bridge/VERSION` User-Agent go with every request."""
    worker = make_worker(target(sink, headers={"X-Team": "ops", "Authorization": "Bearer t0ken"}))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.headers["X-Team"] == "ops"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers["User-Agent"] == f"smsgateway24-bridge/{__version__}"


async def test_configured_headers_cannot_replace_the_signature(sink, store, make_worker, clock):
    """A configured `webhook-id` header does not override the event id the signature covers."""
    worker = make_worker(target(sink, secret=Secret(WHSEC), headers={"Webhook-Id": "forged"}))
    event = await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.webhook_id == event.id
    assert json.loads(request.body)["id"] == event.id
    request.verified(WHSEC)
