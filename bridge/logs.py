"""Logging: one line per record as text or JSON, with the current request/event ids, and secrets redacted.

Text:  `2026-11-27T10:00:00Z INFO bridge.poller: polled 3 messages event_id=evt_… request_id=req_…`
JSON:  `{"ts": "2026-11-27T10:00:00.123Z", "level": "INFO", "logger": "bridge.poller", "msg": "…", "event_id": …}`
Extras come from `log.info(..., extra={...})` and from `log_context(...)` blocks.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal, TextIO

from aiohttp.http_exceptions import HttpProcessingError

from bridge.config import Secret

LogFormat = Literal["text", "json"]
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
FORMATS: tuple[str, ...] = ("text", "json")
REDACTED = "***"
_NEEDS_QUOTES = re.compile(r'[\s"=]')

_context: ContextVar[Mapping[str, Any]] = ContextVar("bridge_log_context", default=MappingProxyType({}))
_secrets: set[str] = set()
# The registered secrets, longest first (a secret that contains another is replaced whole), kept sorted once.
_redacted: tuple[str, ...] = ()
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Libraries whose INFO lines are noise next to the bridge's own (APScheduler logs every job run).
_CHATTY = ("apscheduler",)
# Loggers whose debug lines are kept out even at debug: aiosqlite logs every query with its parameters (the
# idempotency scope is a hash of an API key; texts and numbers are people's data).
_NEVER_DEBUG = ("aiosqlite",)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (e.g. request_id=…, event_id=…) to every record logged inside the block, in this task only."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def register_secrets(secrets: Iterable[Secret | str]) -> None:
    """Make every later log line show these values as '***'."""
    global _redacted
    _secrets.update(_plain(s) for s in secrets)
    _secrets.discard("")
    _redacted = _longest_first(_secrets)


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """`text` with every occurrence of each secret value replaced by '***'."""
    return _redact(text, _longest_first({_plain(s) for s in secrets}))


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted((v for v in values if v), key=len, reverse=True))


def _redact(text: str, longest_first: tuple[str, ...]) -> str:
    for value in longest_first:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _plain(secret: Secret | str) -> str:
    return secret.reveal() if isinstance(secret, Secret) else secret


class FailureStreak:
    """Logs a background loop's failures once per streak: each distinct error once, then the recovery.

    A loop that retries every few seconds while, say, its database file is gone would otherwise write the
    same traceback every pass; the operator needs the first one and the moment it works again.
    """

    def __init__(self, logger: logging.Logger, what: str, counter: Any = None) -> None:
        """`counter` (a Prometheus counter child), when given, counts every failed pass, logged or not."""
        self._logger = logger
        self._what = what
        self._counter = counter
        self._seen: set[tuple[type[BaseException], str]] = set()
        self._failures = 0

    def failed(self, exc: BaseException, retry_in: float, *, expected: bool = False) -> None:
        """Record one failed pass; log it unless this error was already logged in the current streak.

        An `expected` failure (the store is unavailable, say) is a warning without a traceback.
        """
        self._failures += 1
        if self._counter is not None:
            self._counter.inc()
        key = (type(exc), str(exc))
        if key in self._seen:
            return
        self._seen.add(key)
        if expected:
            self._logger.warning("%s failed (%s); retrying every %gs, logged once until it works",
                                 self._what, exc, retry_in)
        else:
            self._logger.error("%s failed unexpectedly; retrying every %gs, logged once until it works",
                               self._what, retry_in, exc_info=exc)

    def succeeded(self) -> None:
        """Record a pass that worked; log the recovery if a streak of failures ends here."""
        if self._failures:
            self._logger.info("%s works again after %d failed pass(es)", self._what, self._failures)
        self._seen.clear()
        self._failures = 0


class ContextFilter(logging.Filter):
    """Adds the fields of the enclosing `log_context` blocks to each record (explicit extras win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class UnparsableRequestFilter(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for a request it cannot parse into one WARNING line.

    The request is the client's fault (a bad byte in a header, a broken request line): anyone who can reach the
    port could otherwise fill the log with tracebacks that say nothing about the bridge.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            # Only the first clause of aiohttp's message: the rest quotes the client's bytes (a header may hold a key).
            reason = exc.message.partition("\n")[0].rstrip(": ")
            record.msg = f"{record.getMessage()}: answered {exc.code} ({reason})"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = record.__dict__
    extra = {k for k in fields.keys() - _STANDARD_ATTRS if not k.startswith("_")}
    return {k: fields[k] for k in fields if k in extra} if extra else {}


def _utc(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, timezone.utc)


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    """A text line's time: records come many a second, and formatting a datetime costs more than the rest."""
    return f"{datetime.fromtimestamp(second, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value …`, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_second(int(record.created))} {record.levelname} {record.name}: {record.getMessage()}"
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in _extras(record).items())
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return _redact(line, _redacted)


def _text_value(value: Any) -> str:
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return json.dumps(text, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extras, and `exc` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _utc(record).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": record.name,
                               "msg": record.getMessage()}
        for key, value in _extras(record).items():
            out.setdefault(key, value if isinstance(value, (int, float, bool, type(None))) else str(value))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        safe = {k: _redact(v, _redacted) if isinstance(v, str) else v for k, v in out.items()}
        return json.dumps(safe, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (so redirections and test capture work)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def setup_logging(level: str = "info", fmt: LogFormat = "text", *, secrets: Iterable[Secret | str] = ()) -> None:
    """Send all logging to stderr at `level` (debug, info, warning, error) as `fmt` lines; calling again replaces it."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if level.lower() not in LEVELS or numeric is None:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; one of {', '.join(FORMATS)}")
    register_secrets(secrets)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(UnparsableRequestFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING)
    for name in _NEVER_DEBUG:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
