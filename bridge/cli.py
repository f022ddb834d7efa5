"""The `sms-bridge` command line (DESIGN section 2): parse, call, print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import __version__

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_UPSTREAM = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command of DESIGN section 2."""
    parser = argparse.ArgumentParser(
        prog="sms-bridge",
        description="SmsGateway24 as events, signed webhooks, auto-replies and an HTTP send API.",
    )
    parser.add_argument("--version", action="version", version=f"sms-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_config_commands(commands)
    _add_gateway_commands(commands)
    _add_routing_commands(commands)
    _add_outbox_commands(commands)
    return parser


# --- config, run, logging (foundation) ---------------------------------------------------------


def _add_config_commands(commands: argparse._SubParsersAction) -> None:
    """`check` and `run`."""


# --- upstream API commands: send, devices, messages, status, tag, contact, newsletter, simulate --


def _add_gateway_commands(commands: argparse._SubParsersAction) -> None:
    """Commands that call the SmsGateway24 API, and the standalone simulator."""


# --- route (dry run) ---------------------------------------------------------------------------


def _add_routing_commands(commands: argparse._SubParsersAction) -> None:
    """`route`: which rules match an event and what they would do."""


# --- deliveries, replay ------------------------------------------------------------------------


def _add_outbox_commands(commands: argparse._SubParsersAction) -> None:
    """`deliveries` and `replay`: inspect and re-queue webhook deliveries."""


# --- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (0 ok, 1 bad input or config, 2 upstream failure)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
