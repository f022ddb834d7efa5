"""The `sms-bridge` command line (DESIGN section 2): parse, call, print."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import web

from bridge import __version__, delivery, dryrun
from bridge.config import Config, ConfigError, load_config
from bridge.eventloop import EVENT_LOOPS, LoopUnavailable, loop_factory
from bridge.events import RULE_EVENT_NAMES
from bridge.gateway.client import GatewayClient
from bridge.gateway.errors import GatewayError, UpstreamUnavailable
from bridge.gateway.models import STATUS_NAMES, OutgoingSms, SimInfo, Sms, Status
from bridge.gateway.simulator import build_simulator_app
from bridge.placement import MemberReport, member_reports
from bridge.rules import RuleError
from bridge.server import ApiProblem, recipients
from bridge.store import Store, StoreError, open_store, postgres_where
from bridge.logs import FORMATS, LEVELS, register_secrets, setup_logging

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_UPSTREAM = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command of DESIGN section 2."""
    parser = _ArgumentParser(
        prog="sms-bridge",
        description="SmsGateway24 as events, signed webhooks, auto-replies and an HTTP send API.",
    )
    parser.add_argument("--version", action="version", version=f"sms-bridge {__version__}")
    add_logging_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_config_commands(commands)
    _add_gateway_commands(commands)
    _add_routing_commands(commands)
    _add_outbox_commands(commands)
    return parser


# --- config, run, logging (foundation) ---------------------------------------------------------


DEFAULT_CONFIG = "rules.yaml"
DEFAULT_LOG_LEVEL = "warning"


class CommandError(Exception):
    """A command failed for a reason one line explains: `main` prints `sms-bridge: MESSAGE` and exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


class _ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors exit 1 (bad input): here 2 means an upstream failure."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`-c/--config FILE` (default ./rules.yaml), for every command that reads the config."""
    parser.add_argument("-c", "--config", metavar="FILE", default=DEFAULT_CONFIG,
                        help=f"the configuration file (default: ./{DEFAULT_CONFIG})")


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """`--log-level` and `--log-format`; accepted before the command and after it."""
    parser.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS,
                        help=f"log records at this level and above (default: {DEFAULT_LOG_LEVEL}; info for run)")
    parser.add_argument("--log-format", choices=FORMATS, default=argparse.SUPPRESS,
                        help="log lines as human-readable text (default) or JSON objects")


def load_config_or_exit(args: argparse.Namespace) -> Config:
    """The config named by `args.config`, its secrets kept out of logs.

    An unreadable file raises CommandError and an invalid one ConfigError: `main` prints either and exits 1.
    """
    try:
        config = load_config(args.config)
    except OSError as exc:
        raise CommandError(f"cannot read {args.config}: {exc.strerror or exc}") from None
    register_secrets(config.secrets)
    return config


def _add_config_commands(commands: argparse._SubParsersAction) -> None:
    """`check` and `run`."""
    check = commands.add_parser(
        "check", help="validate the configuration",
        description="Validate the configuration: exit 0, or exit 1 listing every error as "
                    "FILE:LINE: key.path: message.",
    )
    add_config_option(check)
    add_logging_options(check)
    check.set_defaults(handler=_check)
    run = commands.add_parser(
        "run", help="run the bridge until SIGINT/SIGTERM",
        description="Run the bridge: poller, rules, webhook deliveries and the HTTP API, until SIGINT or SIGTERM.",
    )
    add_config_option(run)
    add_logging_options(run)
    run.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                     help="the event loop: uvloop's when it is installed (auto, the default), or asyncio's own")
    run.set_defaults(handler=_run, default_log_level="info")


def _check(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    print(f"{args.config}: ok")
    print(_summary(config))
    return EXIT_OK


def _summary(config: Config) -> str:
    """One line: what the config sets up."""
    gateway = config.gateway
    auth = "token" if gateway.token else "email"
    upstream = "simulator" if gateway.simulator is not None else f"{gateway.url} ({auth})"
    server = config.server
    api = (f"http://{server.host}:{server.port} ({_count(len(server.api_keys), 'API key')})"
           if server.enabled else "off")
    things = [_count(len(config.rules), "rule"), _count(len(config.webhooks), "webhook target"),
              _count(len(config.inbound), "inbound endpoint")]
    storage = config.storage.path if config.storage.url is None else postgres_where(config.storage.url.reveal())
    return f"{', '.join(things)}; gateway: {upstream}; server: {api}; storage: {storage}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _run(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    from bridge import app  # the whole service: imported only by the command that runs it

    try:
        factory = loop_factory(args.loop)
    except LoopUnavailable as exc:
        print(f"sms-bridge: {exc}", file=sys.stderr)
        return 1
    return app.run(config, factory)


# --- upstream API commands: send, devices, messages, status, tag, contact, newsletter, simulate --

_T = TypeVar("_T")
_DELAY = re.compile(r"([+-]?)(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS_PER = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BODY_PREVIEW = 48


def _add_gateway_commands(commands: argparse._SubParsersAction) -> None:
    """Commands that call the SmsGateway24 API, and the standalone simulator."""
    send = _gateway_parser(commands, "send", "send SMS through the API (addsms, one call per number)")
    send.add_argument("--to", required=True, metavar="NUM[,NUM]", help="recipient numbers, comma-separated")
    send.add_argument("--body", required=True, metavar="TEXT", help="the message text")
    _add_device_options(send)
    send.add_argument("--at", metavar="TIME", help="send later: a time like '2025-01-12 02:03:39' "
                                                   "(account zone unless it has an offset) or a delay like 10m")
    send.add_argument("--urgent", action="store_true", help="ask the phone to send it before others")
    send.add_argument("--customer-id", type=int, metavar="N", help="your own id for the message (customerid)")
    send.set_defaults(handler=_send)
    _gateway_parser(commands, "devices", "list the account's phones, their SIMs and whether they are online"
                    ).set_defaults(handler=_devices)
    _add_messages_command(commands)
    status = _gateway_parser(commands, "status", "show one SMS's status (getsmsstatus)")
    status.add_argument("sms_id", type=int, metavar="SMS_ID")
    status.set_defaults(handler=_status)
    tag = _gateway_parser(_group(commands, "tag", "contact lists (tags)"), "add", "create a tag (savetag); prints its id")
    tag.add_argument("title", metavar="TITLE")
    tag.set_defaults(handler=_tag_add)
    contact = _gateway_parser(_group(commands, "contact", "contacts of tags"), "add",
                              "add a contact to a tag (savecontact); prints its id")
    contact.add_argument("--tag", required=True, type=int, metavar="ID", help="the tag id")
    contact.add_argument("--phone", required=True, metavar="NUM")
    contact.add_argument("--name", required=True, metavar="NAME", help="the contact's full name")
    contact.set_defaults(handler=_contact_add)
    newsletter = _gateway_parser(_group(commands, "newsletter", "newsletters to tags (pakets)"), "create",
                                 "create a newsletter to the contacts of tags (savepaket)")
    newsletter.add_argument("--title", required=True)
    newsletter.add_argument("--tags", required=True, metavar="ID[,ID]", help="tag ids, comma-separated")
    newsletter.add_argument("--body", required=True, metavar="TEXT")
    _add_device_options(newsletter)
    newsletter.add_argument("--at", metavar="TIME", help="when to send: a time or a delay like 1h")
    newsletter.set_defaults(handler=_newsletter_create)
    _add_simulate_command(commands)


def _gateway_parser(commands: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    """A command that reads the config and calls the API."""
    parser = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    add_config_option(parser)
    add_logging_options(parser)
    return parser


def _group(commands: argparse._SubParsersAction, name: str, summary: str) -> argparse._SubParsersAction:
    """A command with sub-commands (`tag add`, …)."""
    parser = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device-id", type=int, metavar="N", help="the sending phone (default: gateway.device_id)")
    parser.add_argument("--sim", type=int, choices=(0, 1), help="the SIM slot (default: gateway.sim)")


def _add_messages_command(commands: argparse._SubParsersAction) -> None:
    messages = _gateway_parser(commands, "messages", "list messages, incoming and outgoing (getallsms)")
    messages.add_argument("--begin", "--since", metavar="TIME", default="1d",
                          help="oldest creation time: a time or how long ago, like 2h (default: 1d)")
    messages.add_argument("--end", "--until", metavar="TIME", help="newest creation time: a time or how long ago")
    messages.add_argument("--all", action="store_true", help="no time window (slow on a large account)")
    messages.add_argument("--device-id", type=int, metavar="N")
    messages.add_argument("--status", metavar="NAME|CODE", help=f"one of {', '.join(STATUS_NAMES)}, or a code")
    messages.add_argument("--sim", type=int, choices=(0, 1))
    messages.add_argument("--customer-id", type=int, metavar="N")
    messages.add_argument("--phone", metavar="NUM", help="only messages to or from this number")
    messages.add_argument("--desc", action="store_true", help="newest first")
    messages.add_argument("--timezone", metavar="ZONE", help="have the API read and show times in this zone")
    messages.add_argument("--count", action="store_true", help="print only how many there are")
    messages.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    messages.set_defaults(handler=_messages)


def _add_simulate_command(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate", help="run a stateful SmsGateway24 simulator until Ctrl-C",
        description="Run a stateful SmsGateway24 simulator: the same /getdata/ API, plus /simulator/ "
                    "control endpoints, until Ctrl-C.",
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8024)
    simulate.add_argument("--timezone", default="Europe/Paris", metavar="ZONE", help="the account's zone")
    simulate.add_argument("--email", default="demo@example.com")
    simulate.add_argument("--password", default="demo")
    simulate.add_argument("--pace", type=_duration_arg, default=2.0, metavar="DURATION",
                          help="time between status steps of outgoing SMS (default: 2s)")
    simulate.add_argument("--failure-rate", type=_fraction_arg, default=0.0, metavar="0..1",
                          help="share of outgoing SMS that end not delivered or failed")
    simulate.add_argument("--inbound-every", type=_duration_arg, default=0.0, metavar="DURATION",
                          help="generate an incoming SMS this often (default: 0, none)")
    simulate.add_argument("--seed", type=int, help="seed of the simulator's randomness")
    add_logging_options(simulate)
    simulate.set_defaults(handler=_simulate)


def _duration_arg(text: str) -> float:
    """A duration option: `500ms`, `2s`, `5m`, `2h`, `1d`, or plain seconds."""
    found = _DELAY.fullmatch(text.strip())
    if found is not None and not found.group(1):
        return float(found.group(2)) * _SECONDS_PER[found.group(3)]
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 500ms, 2s or 5m") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return seconds


def _fraction_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def _time_arg(text: str, zone: tzinfo, *, ago: bool) -> datetime:
    """A time option: ISO (read in `zone` without an offset) or a delay (`ago`: before now, else after)."""
    found = _DELAY.fullmatch(text.strip())
    if found is not None:
        sign = {"+": 1, "-": -1}.get(found.group(1), -1 if ago else 1)
        return datetime.now(zone) + sign * timedelta(seconds=float(found.group(2)) * _SECONDS_PER[found.group(3)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{text!r} is not a time: use one like '2025-01-12 02:03:39' or a delay like 10m") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _zone_arg(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"unknown time zone {name!r}") from None


def _call_gateway(config: Config, action: Callable[[GatewayClient], Awaitable[_T]]) -> _T:
    """Run `action` with a client of the configured account; upstream failures end the command (exit 2).

    With `gateway.simulator` the account is the simulator of the bridge running this config, on
    `gateway.simulator.listen`; when nothing listens there, one line says that no bridge is running.
    """
    gateway = config.gateway
    url, email, password = gateway.url, gateway.email, gateway.password
    if gateway.simulator is not None:
        url, (email, password) = gateway.simulator.url, gateway.simulator_login()

    async def run() -> _T:
        async with aiohttp.ClientSession() as session:
            client = GatewayClient(session, url, email=email, password=password,
                                   token=gateway.token, account_tz=gateway.timezone, timeout=gateway.timeout)
            return await action(client)

    try:
        return asyncio.run(run())
    except UpstreamUnavailable as exc:
        if gateway.simulator is not None and not exc.maybe_applied:
            raise CommandError(f"no bridge is running with {config.source}: nothing listens on {url} "
                               f"(gateway.simulator.listen); start one with `sms-bridge run -c {config.source}`",
                               EXIT_UPSTREAM) from None
        raise CommandError(f"upstream: {exc}", EXIT_UPSTREAM) from None
    except GatewayError as exc:
        raise CommandError(f"upstream: {exc}", EXIT_UPSTREAM) from None


def _device_of(args: argparse.Namespace, config: Config) -> int:
    device_id = args.device_id if args.device_id is not None else config.gateway.device_id
    if device_id is None:
        raise CommandError("no device: pass --device-id or set gateway.device_id")
    return device_id


def _send(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    gateway = config.gateway
    if not args.body:
        raise CommandError("--to needs a number and --body a text")
    numbers = _numbers_arg("--to", [number.strip() for number in args.to.split(",") if number.strip()], config)
    at = None if args.at is None else _time_arg(args.at, _zone_arg(gateway.timezone), ago=False)
    sim = gateway.sim if args.sim is None else args.sim
    messages = [OutgoingSms(number, args.body, _device_of(args, config), sim, at, args.customer_id, args.urgent)
                for number in numbers]

    async def send(client: GatewayClient) -> None:
        for message in messages:
            print(await client.add_sms(message), flush=True)

    _call_gateway(config, send)
    return EXIT_OK


def _numbers_arg(option: str, numbers: list[str], config: Config) -> tuple[str, ...]:
    """`numbers` in E.164 as the HTTP API reads them (gateway.default_region applies); a bad one ends the command."""
    try:
        return recipients(numbers, config.gateway.default_region)
    except ApiProblem as problem:
        raise CommandError(f"{option}: {problem.message}") from None


def _devices(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    devices = _call_gateway(config, lambda client: client.get_all_devices())
    zone, now = _zone_arg(config.gateway.timezone), datetime.now(timezone.utc)
    rows = [("ID", "TITLE", "LAST SEEN", "STATE", "SIMS")]
    for device in devices:
        seen = device.last_seen
        online = seen is not None and (now - seen).total_seconds() <= config.poll.device_offline_after
        rows.append((str(device.id), device.title, _seen(seen, zone, now), "online" if online else "offline",
                     "; ".join(_sim_text(sim) for sim in device.sims) or "-"))
    _print_table(rows)
    return EXIT_OK


def _seen(moment: datetime | None, zone: tzinfo, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{_shown_time(moment.astimezone(zone))} ({_ago(max(0.0, (now - moment).total_seconds()))})"


def _shown_time(moment: datetime) -> str:
    """A time for a table, with its UTC offset: `2026-11-24 10:00:00+01:00`."""
    return moment.isoformat(sep=" ", timespec="seconds")


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _sim_text(sim: SimInfo) -> str:
    carrier = f" {sim.carrier}" if sim.carrier else ""
    return f"SIM{sim.slot}: {sim.number or 'number unknown'}{carrier}"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _status_codes(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    if text.strip().isdigit():
        return [int(text)]
    try:
        return [status.value for status in Status.from_name(text.strip().lower())]
    except ValueError:
        raise CommandError(f"unknown status {text!r}: use one of {', '.join(STATUS_NAMES)} or a code") from None


def _messages(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    zone = _zone_arg(args.timezone or config.gateway.timezone)
    window = {
        "begin": None if args.all else _time_arg(args.begin, zone, ago=True),
        "end": None if args.all or args.end is None else _time_arg(args.end, zone, ago=True),
    }
    filters = dict(device_id=args.device_id, sim=args.sim, customer_id=args.customer_id, phone=args.phone,
                   timezone=args.timezone, **window)
    codes = _status_codes(args.status)

    async def count(client: GatewayClient) -> int:
        return sum([await client.count_sms(status=code, **filters) for code in codes])

    async def fetch(client: GatewayClient) -> list[Sms]:
        found = [sms for code in codes
                 for sms in await client.get_all_sms(status=code, order_by_desc=args.desc, **filters)]
        return sorted(found, key=lambda sms: (sms.created, sms.id), reverse=args.desc) if len(codes) > 1 else found

    if args.count:
        print(_call_gateway(config, count))
    elif args.json:
        print(json.dumps([_sms_json(sms) for sms in _call_gateway(config, fetch)], ensure_ascii=False, indent=2))
    else:
        rows = [("ID", "CREATED", "DIR", "NUMBER", "STATUS", "DEVICE", "BODY")]
        rows += [(str(sms.id), _shown_time(sms.created), "in" if sms.is_incoming else "out", sms.number,
                  sms.status.label if sms.status is not Status.UNKNOWN else f"code {sms.status_code}",
                  str(sms.device_id or "-"), _preview(sms.body)) for sms in _call_gateway(config, fetch)]
        _print_table(rows)
    return EXIT_OK


def _preview(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= _BODY_PREVIEW else flat[: _BODY_PREVIEW - 1] + "…"


def _sms_json(sms: Sms) -> dict[str, object]:
    return {
        "id": sms.id, "direction": "in" if sms.is_incoming else "out", "number": sms.number, "body": sms.body,
        "status": sms.status_code, "status_name": sms.status.label, "device_id": sms.device_id, "sim": sms.sim,
        "customer_id": sms.customer_id, "urgent": sms.urgent, "created_at": sms.created.isoformat(),
        "time_to_send": sms.time_to_send.isoformat() if sms.time_to_send else None, "paket_id": sms.paket_id,
    }


def _status(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    info = _call_gateway(config, lambda client: client.get_sms_status(args.sms_id))
    detail = f": {info.description}" if info.description else ""
    print(f"{info.sms_id} {info.status.label} ({info.status_code}){detail}")
    return EXIT_OK


def _tag_add(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    print(_call_gateway(config, lambda client: client.save_tag(args.title)))
    return EXIT_OK


def _contact_add(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    (phone,) = _numbers_arg("--phone", [args.phone], config)
    print(_call_gateway(config, lambda client: client.save_contact(phone, args.tag, args.name)))
    return EXIT_OK


def _newsletter_create(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    try:
        tags = [int(tag) for tag in args.tags.split(",") if tag.strip()]
    except ValueError:
        raise CommandError(f"--tags {args.tags!r}: use tag ids separated by commas") from None
    if not tags:
        raise CommandError("--tags needs at least one tag id")
    at = None if args.at is None else _time_arg(args.at, _zone_arg(config.gateway.timezone), ago=False)
    sim = config.gateway.sim if args.sim is None else args.sim
    device_id = _device_of(args, config)
    paket_id = _call_gateway(
        config, lambda client: client.save_paket(args.title, device_id, args.body, tags, sim, at))
    print(paket_id if paket_id is not None else "created")
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    _zone_arg(args.timezone)
    app = build_simulator_app(timezone=args.timezone, email=args.email, password=args.password, pace=args.pace,
                              failure_rate=args.failure_rate, inbound_every=args.inbound_every or None,
                              seed=args.seed)
    banner = (f"SmsGateway24 simulator on http://{args.host}:{args.port} (API under /getdata/, controls under "
              f"/simulator/); log in as {args.email} with the --password value. Ctrl-C stops it.")
    try:
        web.run_app(app, host=args.host, port=args.port, access_log=None, shutdown_timeout=1.0,
                    print=lambda _: print(banner, flush=True))
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return EXIT_OK


# --- route (dry run) ---------------------------------------------------------------------------


def _add_routing_commands(commands: argparse._SubParsersAction) -> None:
    """`route`: which rules match an event and what they would do."""
    route = commands.add_parser(
        "route", help="dry run: which rules match an event and what they would do",
        description="Build an event from the options, route it through the configured rules and print each "
                    "matching rule with its rendered actions, and what the stateless safety rules would refuse. "
                    "Sends nothing.",
    )
    add_config_option(route)
    add_logging_options(route)
    route.add_argument("--event", choices=RULE_EVENT_NAMES, default="inbound",
                       help="the kind of event (default: inbound)")
    route.add_argument("--from", dest="sender", metavar="NUM",
                       help="the sender: required for inbound; our own number for status and stuck")
    route.add_argument("--to", metavar="NUM", help="the receiving SIM's number (inbound) or the recipient")
    route.add_argument("--body", metavar="TEXT", help="the SMS text (required for inbound)")
    route.add_argument("--status", choices=STATUS_NAMES,
                       help="the message's status (default: delivered for status, pending for stuck)")
    route.add_argument("--previous-status", choices=STATUS_NAMES, help="the status before (status events)")
    route.add_argument("--sms-id", type=int, default=1, metavar="N", help="the upstream SMS id (default: 1)")
    route.add_argument("--device-id", type=int, metavar="N", help="the device (default: gateway.device_id)")
    route.add_argument("--sim", type=int, choices=(0, 1), help="the SIM slot (default: gateway.sim)")
    route.add_argument("--at", metavar="TIME",
                       help="route as if at this ISO 8601 time (without offset: in gateway.timezone); default: now")
    route.set_defaults(handler=_route)


def _route(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    at = _route_time(args.at, ZoneInfo(config.gateway.timezone))
    request = dryrun.RouteRequest(args.event, args.sender, args.to, args.body, args.status, args.previous_status,
                                  args.sms_id, args.device_id, args.sim)
    try:
        lines = dryrun.route_lines(config, request, at)
    except (dryrun.RouteError, RuleError) as exc:
        raise CommandError(f"{args.config}: {exc}" if isinstance(exc, RuleError) else str(exc)) from None
    for line in lines:
        print(line)
    return EXIT_BAD_INPUT if dryrun.has_failures(lines) else EXIT_OK


def _route_time(text: str | None, zone: ZoneInfo) -> datetime:
    """`--at` as an aware time (a naive one is in the gateway's zone), or now."""
    if text is None:
        return datetime.now(zone)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--at: {text!r} is not an ISO 8601 time (e.g. 2026-11-24T22:30)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


# --- deliveries, replay ------------------------------------------------------------------------


_ERROR_PREVIEW = 60


def _add_outbox_commands(commands: argparse._SubParsersAction) -> None:
    """`deliveries` and `replay`: inspect and re-queue webhook deliveries."""
    listing = commands.add_parser(
        "deliveries", help="list webhook and tag deliveries (the outbox)",
        description="List the outbox: each webhook and tag delivery with its state, attempts, next attempt and "
                    "last error. Reads the bridge's database (storage.path or storage.url); a running bridge may "
                    "keep using it.",
    )
    add_config_option(listing)
    add_logging_options(listing)
    listing.add_argument("--failed", action="store_true",
                         help="only dead deliveries and pending ones whose last attempt failed")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    listing.set_defaults(handler=_deliveries)
    pool = commands.add_parser(
        "pool", help="show the device pool: members, usability and counts",
        description="Show each pool member (device and SIM): whether it is usable now (else why: offline, "
                    "daily_limit, monthly_recipients), the SMS it handed upstream today against its daily limit "
                    "and its distinct recipients this month against its monthly limit, and the sends waiting "
                    "for a usable member. Reads the bridge's database (storage.path or storage.url); a running "
                    "bridge may keep using it.",
    )
    add_config_option(pool)
    add_logging_options(pool)
    pool.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    pool.set_defaults(handler=_pool)
    replay = commands.add_parser(
        "replay", help="re-queue failed deliveries, or retry waiting ones now",
        description="Re-queue the deliveries `deliveries --failed` lists: dead ones, and pending ones waiting "
                    "to retry after a failed attempt (retried now instead). Attempts are reset, the delivery is "
                    "due now and its webhook target re-enabled; a running bridge sends them at its next due check.",
    )
    add_config_option(replay)
    add_logging_options(replay)
    replay.add_argument("ids", nargs="*", type=int, metavar="ID", help="delivery ids, as `deliveries` lists them")
    replay.add_argument("--all-failed", action="store_true",
                        help="every failed delivery (all that `deliveries --failed` lists)")
    replay.add_argument("--target", metavar="NAME",
                        help="re-enable this webhook target (disabled after a 410 Gone) and re-queue its dead "
                             "deliveries; with ids or --all-failed, only that target's")
    replay.set_defaults(handler=_replay)


def _deliveries(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)

    async def read(store: Store) -> tuple[list[delivery.DeliveryInfo], list[Any]]:
        return await delivery.list_deliveries(store, failed_only=args.failed), await store.disabled_targets()

    rows, disabled = _with_store(config, read)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if rows:
        _print_table([("ID", "EVENT", "TYPE", "TARGET", "RULE", "STATE", "ATTEMPTS", "NEXT ATTEMPT",
                       "LAST ERROR/STATUS")] + [_delivery_cells(row) for row in rows])
    else:
        print("no failed deliveries" if args.failed else "no deliveries")
    for target in disabled:
        print(f"webhook target {target['name']} is disabled ({target['reason']}); "
              f"`sms-bridge replay -c {args.config} --target {target['name']}` re-enables it")
    return EXIT_OK


def _pool(args: argparse.Namespace) -> int:
    config = load_config_or_exit(args)
    pool = config.pool
    if pool is None:
        raise CommandError(f"{args.config} has no pool section")

    async def read(store: Store) -> tuple[list[MemberReport], int]:
        zone = ZoneInfo(config.gateway.timezone)
        return await member_reports(store, pool, zone, time.time()), await store.pool_waiting()

    reports, waiting = _with_store(config, read)
    if args.json:
        print(json.dumps({"strategy": str(pool.strategy), "failover": pool.failover, "waiting": waiting,
                          "members": [r.to_json() for r in reports]}, indent=2))
        return EXIT_OK
    print(f"strategy {pool.strategy}, failover {'on' if pool.failover else 'off'}; "
          f"{_count(waiting, 'send')} waiting for a usable member")
    _print_table([("DEVICE", "SIM", "STATE", "TODAY", "RECIPIENTS THIS MONTH")] + [
        (str(r.member.device_id), str(r.member.sim), r.state, _of_limit(r.sent_today, r.member.daily_limit),
         _of_limit(r.recipients_this_month, r.member.monthly_recipients)) for r in reports])
    return EXIT_OK


def _of_limit(count: int, limit: int | None) -> str:
    return f"{count}/{limit}" if limit is not None else str(count)


def _delivery_cells(row: delivery.DeliveryInfo) -> tuple[str, ...]:
    data = row.to_json()
    target = row.target if row.kind == "webhook" else f"tag {row.target}"
    state = f"{row.state} (target disabled)" if row.target_disabled and row.state == "pending" else str(row.state)
    outcome = row.last_error or (str(row.last_status) if row.last_status is not None else "-")
    if len(outcome) > _ERROR_PREVIEW:
        outcome = outcome[:_ERROR_PREVIEW - 1] + "…"
    return (str(row.id), row.event_id, row.event_type, target, row.rule or "-", state, str(row.attempts),
            data["next_attempt_at"] or "-", outcome)


def _replay(args: argparse.Namespace) -> int:
    if args.ids and args.all_failed:
        raise CommandError("give delivery ids or --all-failed, not both")
    if not (args.ids or args.all_failed or args.target):
        raise CommandError("nothing to replay: give delivery ids, --all-failed or --target NAME")
    config = load_config_or_exit(args)
    if args.target is not None and args.target not in config.webhooks:
        raise CommandError(f"no webhook target {args.target!r} in {args.config}")

    async def requeue(store: Store) -> delivery.Replayed:
        return await delivery.replay(store, time.time(), ids=args.ids or None, target=args.target)

    done = _with_store(config, requeue)
    if done.requeued:
        noun = "delivery" if len(done.requeued) == 1 else "deliveries"
        print(f"re-queued {len(done.requeued)} {noun}: {', '.join(map(str, done.requeued))}")
    elif not done.enabled:
        print("nothing re-queued")
    for name in done.enabled:
        print(f"re-enabled webhook target {name}")
    for delivery_id, state in done.skipped:
        why = f"it is {state} and has not failed" if state is not None else "there is no such delivery"
        print(f"delivery {delivery_id} not re-queued: {why}", file=sys.stderr)
    if done.requeued or done.enabled:
        print("a running bridge sends them at its next due check")
    return EXIT_BAD_INPUT if done.skipped else EXIT_OK


def _with_store(config: Config, action: Callable[[Store], Awaitable[_T]]) -> _T:
    """Run `action` on the bridge's database; a missing or unusable database ends the command (exit 1)."""
    path = config.storage.path
    if config.storage.url is None and not path.exists():
        raise CommandError(f"no database at {path}: the bridge has not run with this configuration yet")

    async def run() -> _T:
        store = await open_store(config.storage, default_region=config.gateway.default_region)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        raise CommandError(str(exc)) from None


# --- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (0 ok, 1 bad input or config, 2 upstream failure)."""
    args = build_parser().parse_args(argv)
    level = getattr(args, "log_level", None) or getattr(args, "default_log_level", DEFAULT_LOG_LEVEL)
    setup_logging(level, getattr(args, "log_format", "text"))
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue, file=sys.stderr)
        return EXIT_BAD_INPUT
    except CommandError as exc:
        print(f"sms-bridge: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
