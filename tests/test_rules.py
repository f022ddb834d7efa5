"""Rule matching and action planning: conditions, order, stop, default rules and the planned actions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sample_events import NOW, OWN, SENDER, device, inbound, status

from bridge.config import ActionConfig, ActionKind, MatchConfig, RuleConfig
from bridge.events import Event, EventType
from bridge.gateway.models import Status
from bridge.rules import AddTag, Deliver, Failed, OptIn, OptOut, Router, RuleError, SendSms
from bridge.templating import TemplateEngine

ZONE = "Europe/Paris"  # UTC+1 in November
HOOK = ActionConfig(ActionKind.WEBHOOK, webhook="crm")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc)


def rule(name: str = "r", match: MatchConfig = MatchConfig(), *actions: ActionConfig, stop: bool = False,
         default: bool = False) -> RuleConfig:
    """A rule; with no actions given it fires the `crm` webhook."""
    return RuleConfig(name, match, actions or (HOOK,), stop=stop, default=default)


def router(*rules: RuleConfig) -> Router:
    """A router over `rules` in the Paris zone."""
    return Router.compile(rules, TemplateEngine(None), ZONE)


def fired(rules: tuple[RuleConfig, ...], event: Event, now: datetime = NOW) -> list[str]:
    """Names of the rules that matched, in order."""
    return [m.rule for m in router(*rules).matches(event, now)]


def plan(action: ActionConfig, event: Event, match: MatchConfig = MatchConfig()) -> tuple:
    """What one rule with one action plans for `event`."""
    return router(rule("r", match, action)).route(event, NOW)


# --- conditions --------------------------------------------------------------------------------

CONDITIONS = [
    # event
    ("event inbound", MatchConfig(event=("inbound",)), inbound(), NOW, True),
    ("event inbound vs status", MatchConfig(event=("inbound",)), status(), NOW, False),
    ("event list", MatchConfig(event=("status", "stuck")), status(kind=EventType.STUCK), NOW, True),
    ("event device_offline", MatchConfig(event=("device_offline",)), device(), NOW, True),
    ("event device_online vs offline", MatchConfig(event=("device_online",)), device(), NOW, False),
    ("no condition matches a device event", MatchConfig(), device(True), NOW, True),
    # keyword
    ("keyword", MatchConfig(keyword=("INFO",)), inbound("info please"), NOW, True),
    ("keyword punctuation", MatchConfig(keyword=("INFO",)), inbound("Info! hours?"), NOW, True),
    ("keyword accent in body", MatchConfig(keyword=("INFO",)), inbound("ÍNFO"), NOW, True),
    ("keyword accent in rule", MatchConfig(keyword=("ÍNFO",)), inbound("info"), NOW, True),
    ("keyword list", MatchConfig(keyword=("HELP", "INFO")), inbound("help me"), NOW, True),
    ("keyword longer word", MatchConfig(keyword=("INFO",)), inbound("INFORMATION"), NOW, False),
    ("keyword not first", MatchConfig(keyword=("INFO",)), inbound("please INFO"), NOW, False),
    ("keyword on device event", MatchConfig(keyword=("INFO",)), device(), NOW, False),
    # body_regex
    ("regex", MatchConfig(body_regex=r"(?i)order\s+\d+"), inbound("Where is ORDER 42?"), NOW, True),
    ("regex no match", MatchConfig(body_regex=r"order\s+\d+"), inbound("ORDER 42"), NOW, False),
    ("regex on device event", MatchConfig(body_regex=".*"), device(), NOW, False),
    # from / to
    ("from exact", MatchConfig(from_=(SENDER,)), inbound(), NOW, True),
    ("from with spaces", MatchConfig(from_=("+49 123 1231 2332",)), inbound(), NOW, True),
    ("from prefix", MatchConfig(from_=("+49123*",)), inbound(), NOW, True),
    ("from other prefix", MatchConfig(from_=("+33*",)), inbound(), NOW, False),
    ("from glob", MatchConfig(from_=("+49???12312332",)), inbound(), NOW, True),
    ("from list", MatchConfig(from_=("+33*", "+4912312312332")), inbound(), NOW, True),
    ("from exact is not prefix", MatchConfig(from_=("+4912",)), inbound(), NOW, False),
    ("from alphanumeric any case", MatchConfig(from_=("dhl",)), inbound(sender="DHL"), NOW, True),
    ("from unknown sender", MatchConfig(from_=("*",)), inbound(sender=None), NOW, False),
    ("from of a status event is our number", MatchConfig(from_=(OWN,)), status(), NOW, True),
    ("to", MatchConfig(to=("+49157*",)), inbound(to=OWN), NOW, True),
    ("to unknown", MatchConfig(to=("*",)), inbound(), NOW, False),
    # device_id, sim
    ("device_id", MatchConfig(device_id=(1, 11231)), inbound(), NOW, True),
    ("device_id other", MatchConfig(device_id=(1, 2)), inbound(), NOW, False),
    ("device_id of a device event", MatchConfig(device_id=(1576,)), device(), NOW, True),
    ("sim", MatchConfig(sim=0), inbound(), NOW, True),
    ("sim other", MatchConfig(sim=1), inbound(), NOW, False),
    ("sim on device event", MatchConfig(sim=0), device(), NOW, False),
    # status
    ("status", MatchConfig(status=("delivered",)), status(), NOW, True),
    ("status list", MatchConfig(status=("failed", "not_delivered")), status(Status.NOT_DELIVERED), NOW, True),
    ("status other", MatchConfig(status=("failed",)), status(), NOW, False),
    ("status not_allowed is 101 too", MatchConfig(status=("not_allowed",)), status(Status.NOT_ALLOWED_APP), NOW, True),
    ("status received", MatchConfig(status=("received",)), inbound(), NOW, True),
    ("status on device event", MatchConfig(status=("delivered",)), device(), NOW, False),
    # between (Paris = UTC+1)
    ("between inside", MatchConfig(between="09:00-17:00"), inbound(), utc(24, 10), True),
    ("between start included", MatchConfig(between="09:00-17:00"), inbound(), utc(24, 8), True),
    ("between end excluded", MatchConfig(between="09:00-17:00"), inbound(), utc(24, 16), False),
    ("between last minute", MatchConfig(between="09:00-17:00"), inbound(), utc(24, 15, 59), True),
    ("between before", MatchConfig(between="09:00-17:00"), inbound(), utc(24, 7, 59), False),
    ("between wraps: late", MatchConfig(between="22:00-06:00"), inbound(), utc(24, 22), True),
    ("between wraps: early", MatchConfig(between="22:00-06:00"), inbound(), utc(24, 3), True),
    ("between wraps: end excluded", MatchConfig(between="22:00-06:00"), inbound(), utc(24, 5), False),
    ("between wraps: midday", MatchConfig(between="22:00-06:00"), inbound(), utc(24, 12), False),
    ("between in rule zone", MatchConfig(between="09:00-17:00", timezone="America/New_York"), inbound(),
     utc(24, 10), False),
    ("between in rule zone inside", MatchConfig(between="09:00-17:00", timezone="America/New_York"), inbound(),
     utc(24, 15), True),
    # days (in the zone: Sunday 23:30 UTC is Monday in Paris)
    ("days", MatchConfig(days=("mon", "tue")), inbound(), NOW, True),
    ("days other", MatchConfig(days=("sat", "sun")), inbound(), NOW, False),
    ("days in zone", MatchConfig(days=("mon",)), inbound(), utc(29, 23, 30), True),
    ("days in UTC", MatchConfig(days=("sun",), timezone="UTC"), inbound(), utc(29, 23, 30), True),
    ("days and between", MatchConfig(days=("tue",), between="09:00-12:00"), inbound(), NOW, True),
    # not
    ("not keyword", MatchConfig(not_=MatchConfig(keyword=("STOP",))), inbound("hello"), NOW, True),
    ("not keyword hit", MatchConfig(not_=MatchConfig(keyword=("STOP",))), inbound("stop"), NOW, False),
    ("not between", MatchConfig(not_=MatchConfig(between="09:00-17:00")), inbound(), utc(24, 20), True),
    ("not of two conditions", MatchConfig(not_=MatchConfig(keyword=("INFO",), sim=1)), inbound(), NOW, True),
    ("not not", MatchConfig(not_=MatchConfig(not_=MatchConfig(keyword=("INFO",)))), inbound(), NOW, True),
    ("not with outer", MatchConfig(event=("inbound",), not_=MatchConfig(from_=("+33*",))), inbound(), NOW, True),
    ("not event", MatchConfig(not_=MatchConfig(event=("inbound",))), device(), NOW, True),
    ("not inherits rule zone", MatchConfig(timezone="UTC", not_=MatchConfig(between="10:00-11:00")),
     inbound(), NOW, False),
    # combinations
    ("keyword and from", MatchConfig(keyword=("INFO",), from_=("+49*",)), inbound(), NOW, True),
    ("keyword and other from", MatchConfig(keyword=("INFO",), from_=("+33*",)), inbound(), NOW, False),
    ("event, status, device", MatchConfig(event=("status",), status=("delivered",), device_id=(11231,)),
     status(), NOW, True),
    ("keyword, regex, between", MatchConfig(keyword=("INFO",), body_regex="please", between="09:00-17:00"),
     inbound(), NOW, True),
]


@pytest.mark.parametrize(("match", "event", "now", "expected"), [c[1:] for c in CONDITIONS],
                         ids=[c[0] for c in CONDITIONS])
def test_condition(match: MatchConfig, event: Event, now: datetime, expected: bool) -> None:
    """A rule matches an event exactly when all its conditions hold."""
    assert bool(fired((rule("r", match),), event, now)) is expected


def test_regex_named_groups_become_match() -> None:
    """Named groups of body_regex are the match values, empty for groups that did not take part."""
    found = router(rule("r", MatchConfig(body_regex=r"order (?P<n>\d+)(?P<x>!)?"))).matches(inbound("order 42"), NOW)
    assert found[0].match == {"n": "42", "x": ""}


def test_groups_inside_not_are_not_exported() -> None:
    """A regex under not: exports no groups."""
    found = router(rule("r", MatchConfig(not_=MatchConfig(body_regex=r"(?P<n>\d+)")))).matches(inbound("x"), NOW)
    assert found[0].match == {}


def test_naive_now_is_refused() -> None:
    """Routing with a naive datetime is a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        router(rule()).route(inbound(), datetime(2026, 11, 24, 10, 0))


# --- order, stop, default ----------------------------------------------------------------------

KW_INFO = MatchConfig(keyword=("INFO",))
KW_HELP = MatchConfig(keyword=("HELP",))

ORDERING = [
    ("every matching rule runs in order", (rule("a"), rule("b", KW_INFO), rule("c", KW_HELP), rule("d")),
     inbound(), ["a", "b", "d"]),
    ("stop ends routing after its rule", (rule("a"), rule("b", KW_INFO, stop=True), rule("c")), inbound(),
     ["a", "b"]),
    ("a stop rule that does not match does not stop", (rule("a", KW_HELP, stop=True), rule("b")), inbound(),
     ["b"]),
    ("default runs when nothing else matched", (rule("a", KW_HELP), rule("fallback", default=True)), inbound(),
     ["fallback"]),
    ("default is skipped when a rule matched", (rule("fallback", default=True), rule("a", KW_INFO)), inbound(),
     ["a"]),
    ("default only for inbound", (rule("a", MatchConfig(event=("inbound",))), rule("fallback", default=True)),
     status(), []),
    ("defaults run in order until stop", (rule("d1", default=True, stop=True), rule("d2", default=True)),
     inbound(), ["d1"]),
    ("default conditions still apply", (rule("d1", KW_HELP, default=True), rule("d2", default=True)), inbound(),
     ["d2"]),
    ("a stopped routing runs no default", (rule("a", KW_INFO, stop=True), rule("fallback", default=True)),
     inbound(), ["a"]),
    ("rules of another event are skipped", (rule("s", MatchConfig(event=("status",))), rule("i")), inbound(),
     ["i"]),
]


@pytest.mark.parametrize(("rules", "event", "expected"), [c[1:] for c in ORDERING], ids=[c[0] for c in ORDERING])
def test_rule_order(rules: tuple[RuleConfig, ...], event: Event, expected: list[str]) -> None:
    """Rules run in order, honouring stop and default."""
    assert fired(rules, event) == expected


def test_default_rules_leave_safety_keywords_alone() -> None:
    """An opt-out word such as STOP is handled by safety, so a default rule does not answer it."""
    defaults = Router.compile((rule("fallback", default=True),), TemplateEngine(None), ZONE,
                              handled_keywords=("STOP", "START"))
    assert defaults.route(inbound("Stop!"), NOW) == ()
    assert defaults.route(inbound("hello"), NOW) != ()


def test_default_flag_is_reported() -> None:
    """A RuleMatch says whether it came from a default rule."""
    found = router(rule("fallback", default=True)).matches(inbound(), NOW)
    assert found[0].default is True


# --- actions -----------------------------------------------------------------------------------


def test_reply_goes_to_the_sender_on_the_same_device_and_sim() -> None:
    """A reply is an SMS to the sender from the device and SIM that received the message."""
    planned = plan(ActionConfig(ActionKind.REPLY, text="Hours 9-17"), inbound(device_id=5, sim=1))
    assert planned == (SendSms(SENDER, "Hours 9-17", 5, 1, "r", True, False, False),)


def test_reply_device_and_sim_overrides() -> None:
    """A reply's device_id and sim override the receiving ones; safety overrides pass through."""
    action = ActionConfig(ActionKind.REPLY, text="x", device_id=9, sim=0, allow_alphanumeric=True,
                          allow_own_numbers=True)
    assert plan(action, inbound(sim=1)) == (SendSms(SENDER, "x", 9, 0, "r", True, True, True),)


def test_reply_text_sees_sms_match_and_local_now() -> None:
    """A reply template sees the SMS, the regex groups and now in the gateway zone."""
    action = ActionConfig(ActionKind.REPLY, text="{{ sms.from }} #{{ match.n }} {{ now.strftime('%H:%M') }}")
    planned = plan(action, inbound("order 42"), MatchConfig(body_regex=r"order (?P<n>\d+)"))
    assert planned[0].text == f"{SENDER} #42 11:00"


def test_reply_body_with_template_syntax_is_verbatim() -> None:
    """An SMS body full of template syntax is echoed, not rendered."""
    body = "{{ 7*7 }} {% for x in range(2) %}{{ ''.__class__ }}{% endfor %}"
    assert plan(ActionConfig(ActionKind.REPLY, text="You said: {{ sms.body }}"), inbound(body))[0].text == (
        f"You said: {body}")


@pytest.mark.parametrize("event", [status(), status(kind=EventType.STUCK), device()], ids=["status", "stuck", "device"])
@pytest.mark.parametrize("action", [ActionConfig(ActionKind.REPLY, text="x"), ActionConfig(ActionKind.TAG, tag_id=1),
                                    ActionConfig(ActionKind.OPT_OUT), ActionConfig(ActionKind.OPT_IN)],
                         ids=["reply", "tag", "opt_out", "opt_in"])
def test_sender_actions_need_an_inbound_sms(action: ActionConfig, event: Event) -> None:
    """reply, tag, opt_out and opt_in plan nothing for events other than an inbound SMS."""
    assert plan(action, event) == ()


def test_reply_rendering_empty_plans_nothing() -> None:
    """A reply whose text renders blank is skipped (a conditional reply)."""
    assert plan(ActionConfig(ActionKind.REPLY, text="{% if match.n %}ok{% endif %} "), inbound(),
                MatchConfig(body_regex="(?P<n>zzz)?")) == ()


def test_render_error_is_a_failed_action_and_the_rest_still_runs() -> None:
    """A reply that fails to render becomes Failed; later actions and rules are still planned."""
    broken = rule("a", MatchConfig(), ActionConfig(ActionKind.REPLY, text="{{ nope }}"), HOOK)
    planned = router(broken, rule("b")).route(inbound(), NOW)
    assert planned == (Failed("a", 0, "inline template: 'nope' is undefined"),
                       Deliver("crm", "a", None, {}), Deliver("crm", "b", None, {}))


def test_send_to_each_listed_number() -> None:
    """send plans one SMS per listed number, not a reply, on the gateway's default device."""
    action = ActionConfig(ActionKind.SEND, to=("+491", "+492"), text="New SMS from {{ sms.from }}")
    assert plan(action, inbound()) == (
        SendSms("+491", f"New SMS from {SENDER}", None, None, "r", False),
        SendSms("+492", f"New SMS from {SENDER}", None, None, "r", False))


def test_send_recipients_are_templates() -> None:
    """send recipients are rendered with the rule context."""
    action = ActionConfig(ActionKind.SEND, to=("{{ match.to }}",), text="fwd", device_id=3, sim=1)
    planned = plan(action, inbound("fwd +4930123"), MatchConfig(body_regex=r"fwd (?P<to>\S+)"))
    assert planned == (SendSms("+4930123", "fwd", 3, 1, "r", False),)


def test_send_works_on_any_event() -> None:
    """send fires for a device event too (e.g. paging someone)."""
    action = ActionConfig(ActionKind.SEND, to=("+491",), text="{{ device.title }} is offline")
    assert plan(action, device())[0].text == "Pixel is offline"


def test_send_with_an_empty_recipient_fails() -> None:
    """A recipient that renders empty makes the send a Failed action."""
    planned = plan(ActionConfig(ActionKind.SEND, to=("{{ match.to }}",), text="x"), inbound(),
                   MatchConfig(body_regex="(?P<to>zzz)?"))
    assert isinstance(planned[0], Failed) and "recipient" in planned[0].message


def test_webhook_carries_target_template_rule_and_groups() -> None:
    """webhook plans a Deliver with the target, the template override, the rule and the regex groups."""
    action = ActionConfig(ActionKind.WEBHOOK, webhook="chat", template="slack.json.j2")
    planned = plan(action, inbound("order 7"), MatchConfig(body_regex=r"order (?P<n>\d)"))
    assert planned == (Deliver("chat", "r", "slack.json.j2", {"n": "7"}),)


def test_webhook_fires_on_device_events() -> None:
    """webhook is planned for every kind of event."""
    assert plan(HOOK, device()) == (Deliver("crm", "r", None, {}),)


def test_tag_names_the_contact_after_the_sender_by_default() -> None:
    """tag saves the sender under the tag, named by its number unless a name template is given."""
    assert plan(ActionConfig(ActionKind.TAG, tag_id=8303), inbound()) == (AddTag(8303, SENDER, SENDER, "r"),)


def test_tag_name_template_is_rendered() -> None:
    """tag's name template is rendered with the rule context."""
    action = ActionConfig(ActionKind.TAG, tag_id=8303, name_template="Lead {{ sms.body.split()[1] }}")
    assert plan(action, inbound("JOIN Ann"))[0].name == "Lead Ann"


@pytest.mark.parametrize(("kind", "planned"), [(ActionKind.OPT_OUT, OptOut(SENDER, "r")),
                                               (ActionKind.OPT_IN, OptIn(SENDER, "r"))])
def test_opt_actions_name_the_sender(kind: ActionKind, planned: object) -> None:
    """opt_out / opt_in plan the change for the sender's number."""
    assert plan(ActionConfig(kind), inbound("STOP")) == (planned,)


def test_actions_of_all_rules_in_order() -> None:
    """route lists the actions of every matching rule, in rule then action order."""
    planned = router(rule("a", KW_INFO, ActionConfig(ActionKind.OPT_IN), HOOK), rule("b")).route(inbound(), NOW)
    assert [(type(a).__name__, a.rule) for a in planned] == [("OptIn", "a"), ("Deliver", "a"), ("Deliver", "b")]


# --- compile errors ----------------------------------------------------------------------------

ERRORS = [
    ("bad regex", rule("r", MatchConfig(body_regex="(")), "rules[0].match.body_regex"),
    ("unknown event", rule("r", MatchConfig(event=("sms",))), "rules[0].match.event"),
    ("unknown status", rule("r", MatchConfig(status=("lost",))), "rules[0].match.status"),
    ("bad between", rule("r", MatchConfig(between="9-17")), "rules[0].match.between"),
    ("out of range between", rule("r", MatchConfig(between="09:00-24:00")), "rules[0].match.between"),
    ("empty between", rule("r", MatchConfig(between="09:00-09:00")), "rules[0].match.between"),
    ("bad day", rule("r", MatchConfig(days=("monday",))), "rules[0].match.days"),
    ("bad zone", rule("r", MatchConfig(timezone="Mars/Base")), "rules[0].match.timezone"),
    ("nested not", rule("r", MatchConfig(not_=MatchConfig(between="x"))), "rules[0].match.not.between"),
    ("two-word keyword", rule("r", MatchConfig(keyword=("TWO WORDS",))), "rules[0].match.keyword"),
    ("punctuation keyword", rule("r", MatchConfig(keyword=("!!",))), "rules[0].match.keyword"),
    ("bad reply", rule("r", MatchConfig(), ActionConfig(ActionKind.REPLY, text="{% if %}")),
     "rules[0].actions[0].text"),
    ("reply without text", rule("r", MatchConfig(), ActionConfig(ActionKind.REPLY)), "rules[0].actions[0].text"),
    ("bad send recipient", rule("r", MatchConfig(), ActionConfig(ActionKind.SEND, to=("+1", "{{"), text="x")),
     "rules[0].actions[0].to[1]"),
    ("send without recipient", rule("r", MatchConfig(), ActionConfig(ActionKind.SEND, text="x")),
     "rules[0].actions[0].to"),
    ("missing webhook template", rule("r", MatchConfig(), ActionConfig(ActionKind.WEBHOOK, webhook="crm",
                                                                      template="absent.json.j2")),
     "rules[0].actions[0].template"),
    ("webhook without target", rule("r", MatchConfig(), ActionConfig(ActionKind.WEBHOOK)),
     "rules[0].actions[0].webhook"),
    ("tag without id", rule("r", MatchConfig(), ActionConfig(ActionKind.TAG)), "rules[0].actions[0].tag_id"),
    ("bad tag name", rule("r", MatchConfig(), ActionConfig(ActionKind.TAG, tag_id=1, name_template="{{")),
     "rules[0].actions[0].name"),
    ("default for status only", rule("r", MatchConfig(event=("status",)), default=True), "rules[0].default"),
]


@pytest.mark.parametrize(("bad", "path"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_compile_error_names_the_key_path(bad: RuleConfig, path: str) -> None:
    """A rule that cannot compile raises RuleError naming its key path."""
    with pytest.raises(RuleError) as caught:
        router(bad)
    assert caught.value.path == path and str(caught.value).startswith(f"{path}: ")


def test_error_path_counts_rules() -> None:
    """The path of a RuleError names the index of the faulty rule."""
    with pytest.raises(RuleError, match=r"^rules\[1\]\.match\.body_regex"):
        router(rule("a"), rule("b", MatchConfig(body_regex="[")))


def test_duplicate_rule_names_are_refused() -> None:
    """Two rules with one name are an error (cooldowns are kept per rule name)."""
    with pytest.raises(RuleError, match=r"^rules\[1\]\.name"):
        router(rule("a"), rule("a"))


def test_unknown_gateway_zone_is_refused() -> None:
    """An unknown default zone is an error on gateway.timezone."""
    with pytest.raises(RuleError, match=r"^gateway\.timezone"):
        Router.compile((), TemplateEngine(None), "Nowhere/Town")
