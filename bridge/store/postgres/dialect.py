"""SQL written once for both engines, as PostgreSQL reads it."""

from __future__ import annotations

import re


def numbered(sql: str) -> str:
    """`sql` with each `?` placeholder outside quotes as $1, $2…, PostgreSQL's spelling."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    count = 0
    for i in range(0, len(parts), 2):
        pieces = parts[i].split("?")
        text = pieces[0]
        for piece in pieces[1:]:
            count += 1
            text += f"${count}{piece}"
        parts[i] = text
    return "".join(parts)
