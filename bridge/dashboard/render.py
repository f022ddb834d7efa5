"""The dashboard's Jinja environment: autoescaped templates and the filters that format stored values."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import jinja2

from bridge.gateway.models import Status

TEMPLATES_DIR = Path(__file__).parent / "templates"


class Renderer:
    """Renders the dashboard's templates; times shown in the account's zone."""

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(when=self.when, status_name=status_name, origin=origin, ms=milliseconds)
        self.env.globals.update(query=query)

    def render(self, name: str, **context: Any) -> str:
        """The page `name` rendered with `context`."""
        return self.env.get_template(name).render(**context)

    def when(self, ts: float | None) -> str:
        """Unix seconds as a local time of the account (`2026-11-24 10:00:03`), or a dash."""
        if ts is None:
            return "–"
        return datetime.fromtimestamp(ts, timezone.utc).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")


def status_name(code: int | None) -> str:
    """The name of an upstream status code (`delivered`), or `code N` for one without a name."""
    if code is None:
        return "–"
    status = Status.from_code(code)
    return status.label if status is not Status.UNKNOWN or code == 0 else f"code {code}"


def origin(url: str) -> str:
    """A URL's scheme and host only: a webhook URL's path and query often carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def milliseconds(value: float | None) -> str:
    """A latency in whole milliseconds, or a dash."""
    return "–" if value is None else f"{value:.0f} ms"


def query(params: dict[str, Any], **changes: Any) -> str:
    """`?…` with `params` updated by `changes` (None drops a key), for links that keep the page's filters."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else "?"
