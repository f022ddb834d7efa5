"""Router throughput: events per second routed through 100 rules of mixed conditions.

Prints one figure per line as `name<TAB>value<TAB>unit`, or with --json a list of
{"figure", "value", "unit", "baseline", "target", "met"}. The baseline, measured in the same run, is a bare
loop calling one compiled regex per rule on each event's body: the least any matching of 100 rules costs.
Times are CPU seconds of this process (time.process_time), the best of --repeat runs (as timeit does), so
other load on the machine skews them as little as possible.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from datetime import datetime, timedelta, timezone

from bridge.config import ActionConfig, ActionKind, MatchConfig, RuleConfig
from bridge.events import DeviceFacts, Event, EventType, SmsFacts, device_event, sms_event
from bridge.gateway.models import Status
from bridge.rules import Router
from bridge.templating import TemplateEngine

TARGET_EVENTS_PER_S = 20_000
ZONE = "Europe/Paris"
START = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
WORDS = ("INFO", "PRICE", "HELP", "ORDER", "HOURS", "STOP", "START", "JOIN", "hello", "thanks")


def build_rules() -> tuple[RuleConfig, ...]:
    """100 rules: keywords, regexes, sender globs, time windows, statuses, `not`, a few rendered replies."""
    hook = (ActionConfig(ActionKind.WEBHOOK, webhook="crm"),)
    rules: list[RuleConfig] = []
    for i in range(30):
        rules.append(RuleConfig(f"kw{i}", MatchConfig(event=("inbound",), keyword=(f"{WORDS[i % 10]}{i // 10 or ''}",)),
                                hook))
    for i in range(15):
        rules.append(RuleConfig(f"re{i}", MatchConfig(body_regex=rf"(?i)order\s+(?P<n>\d+)-{i}\b"), hook))
    for i in range(15):
        rules.append(RuleConfig(f"from{i}", MatchConfig(event=("inbound",), from_=(f"+49{150 + i}*",)), hook))
    for i in range(10):
        window = f"{7 + i:02d}:00-{18 + i // 2:02d}:00"
        rules.append(RuleConfig(f"hours{i}", MatchConfig(keyword=(WORDS[i],), between=window,
                                                         days=("mon", "tue", "wed", "thu", "fri")), hook))
    for i in range(15):
        statuses = (("delivered",), ("failed", "not_delivered"), ("sent",))[i % 3]
        rules.append(RuleConfig(f"st{i}", MatchConfig(event=("status",), status=statuses, sim=i % 2), hook))
    for i in range(10):
        rules.append(RuleConfig(f"not{i}", MatchConfig(from_=(f"+49{160 + i}*",),
                                                       not_=MatchConfig(keyword=("STOP", "START"))), hook))
    for i in range(5):
        reply = ActionConfig(ActionKind.REPLY, text="Thanks {{ sms.from }}, we got: {{ sms.body | sms_truncate(60) }}")
        rules.append(RuleConfig(f"reply{i}", MatchConfig(event=("inbound",), keyword=(f"JOIN{i or ''}",),
                                                         not_=MatchConfig(between="22:00-06:00")), (reply, *hook)))
    return tuple(rules)


def build_events(count: int, seed: int = 7) -> list[tuple[Event, datetime]]:
    """`count` events (70% inbound, 25% status, 5% device) with routing times over a week."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        now = START + timedelta(minutes=rng.randrange(7 * 24 * 60))
        roll = rng.random()
        sender = f"+49{rng.randrange(140, 175)}{rng.randrange(10**7):07d}"
        if roll < 0.70:
            body = f"{rng.choice(WORDS)}{rng.choice(('', '1', '2'))} order {rng.randrange(100)}-{rng.randrange(20)} pls"
            facts = SmsFacts(n, sender, None, body, 1576, rng.randrange(2), Status.RECEIVED, None, now, None)
            events.append((sms_event(EventType.RECEIVED, facts, now), now))
        elif roll < 0.95:
            status = rng.choice((Status.SENT, Status.DELIVERED, Status.FAILED, Status.NOT_DELIVERED))
            facts = SmsFacts(n, "+4915752982212", sender, "Your code is 1234", 1576, rng.randrange(2), status,
                             Status.SENT, now, None)
            events.append((sms_event(EventType.STATUS, facts, now), now))
        else:
            events.append((device_event(rng.random() < 0.5, DeviceFacts(1576, "Pixel", now, ()), now, str(n)), now))
    return events


def measure_router(router: Router, events: list[tuple[Event, datetime]]) -> tuple[float, int]:
    """Seconds to route every event, and the number of actions planned."""
    actions = 0
    began = time.process_time()
    for event, now in events:
        actions += len(router.route(event, now))
    return time.process_time() - began, actions


def measure_baseline(patterns: list[re.Pattern[str]], events: list[tuple[Event, datetime]]) -> float:
    """Seconds for a bare loop running one compiled regex per rule over every event's body."""
    bodies = [event.sms.body if event.sms is not None else "" for event, _ in events]
    began = time.process_time()
    for body in bodies:
        for pattern in patterns:
            pattern.search(body)
    return time.process_time() - began


def figures(event_count: int, repeat: int) -> list[dict[str, object]]:
    """Run the benchmark and return its figures."""
    rules = build_rules()
    began = time.process_time()
    router = Router.compile(rules, TemplateEngine(None), ZONE)
    compile_s = time.process_time() - began
    events = build_events(event_count)
    measure_router(router, events[:2000])  # warm caches (template contexts, zone lookups)
    routed_s, actions = min(measure_router(router, events) for _ in range(repeat))
    patterns = [re.compile(rf"(?i)\b{re.escape(rule.name)}\b") for rule in rules]
    baseline_s = min(measure_baseline(patterns, events) for _ in range(repeat))
    rate, baseline_rate = event_count / routed_s, event_count / baseline_s
    return [
        _figure("router_events_per_s", rate, "events/s", baseline_rate, TARGET_EVENTS_PER_S),
        _figure("router_us_per_event", routed_s / event_count * 1e6, "us"),
        _figure("baseline_regex_per_rule_events_per_s", baseline_rate, "events/s"),
        _figure("router_vs_baseline", rate / baseline_rate, "ratio"),
        _figure("actions_per_event", actions / event_count, "actions"),
        _figure("compile_100_rules_ms", compile_s * 1000, "ms"),
        _figure("rules", len(rules), "rules"),
        _figure("events", event_count, "events"),
        _figure("repeat", repeat, "runs"),
    ]


def _figure(name: str, value: float, unit: str, baseline: float | None = None,
            target: float | None = None) -> dict[str, object]:
    return {"figure": name, "value": round(value, 3), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 3), "target": target,
            "met": None if target is None else value >= target}


def main() -> None:
    """Parse the options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events to route (default: 50000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs to take the best of (default: 5)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of figures")
    args = parser.parse_args()
    results = figures(args.events, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        print(f"{result['figure']}\t{result['value']}\t{result['unit']}")


if __name__ == "__main__":
    main()
