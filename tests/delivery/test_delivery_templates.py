"""Webhook bodies rendered from templates: the target's, or the one a rule's action names."""

from __future__ import annotations

from delivery_support import add_event, inbound_event, outbox, queue, queue_webhook, target

from bridge.config import Secret
from bridge.store import NewDelivery

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_a_bundled_preset_is_the_body_with_its_content_type(sink, store, make_worker, clock):
    """A target with `template: slack.json.j2` gets the rendered Slack message as application/json."""
    worker = make_worker(target(sink, template="slack.json.j2"))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    message = request.json()
    assert message["text"] == "SMS from +4912312312332: INFO please"
    assert message["blocks"][0]["type"] == "header"
    assert request.headers["Content-Type"] == "application/json"


async def test_the_signature_covers_the_rendered_body(sink, store, make_worker, clock):
    """A templated body is what the signature signs."""
    worker = make_worker(target(sink, template="slack.json.j2", secret=Secret(WHSEC)))
    await queue_webhook(store, clock())
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    request.verified(WHSEC)


async def test_the_action_template_overrides_the_target_template(sink, store, make_worker, clock):
    """A rule action's template (with its regex groups as `match`) replaces the target's, as text/plain."""
    worker = make_worker(target(sink, template="slack.json.j2"))
    event = inbound_event()
    await add_event(store, event, clock())
    spec = {"template": "order {{ match.number }} from {{ sms.from }} by {{ event.rule }}", "match": {"number": "4711"}}
    await queue(store, clock(), NewDelivery(event.id, "webhook", "crm", "orders", spec))
    await worker.deliver_due_once()
    [request] = sink.requests("/crm")
    assert request.body == b"order 4711 from +4912312312332 by orders"
    assert request.headers["Content-Type"] == "text/plain"


async def test_a_template_that_fails_to_render_is_dead_at_once(sink, store, make_worker, clock):
    """A render error is the template's fault: the row goes to the dead letters without retries."""
    worker = make_worker(target(sink))
    await queue_webhook(store, clock(), spec={"template": "{{ no_such_name }}"})
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert row["last_error"].startswith("template error:")
    assert sink.requests("/crm") == []
