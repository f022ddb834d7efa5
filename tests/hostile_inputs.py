"""Hypothesis settings and strategies for inputs from outside driven through the whole running bridge.

Each example runs real I/O (a local upstream, the store, HTTP), so the counts stay small; `FUZZ_EXAMPLES`
(environment) raises them for a longer local run, as in the parser fuzz suites.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

WHOLE_PATH = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    deadline=None,
    # One bridge serves every example of a test: its state carrying over is part of what is tested.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters that have broken text handling somewhere: NUL and controls, right-to-left marks and text,
# zero-width joiners, combining marks, the replacement character itself, emoji (pairs in UTF-16), halves
# of surrogate pairs.
ODD_CHARACTERS = ("\x00", "\x01", "\x1b", "\u200f", "\u202e", "\u200d", "\u0301", "\ufffd", "\ufeff",
                  "\u05e9\u05dc\u05d5\u05dd", "\U0001f600", "\U0001f469\u200d\U0001f4bb", "\ud83d", "\ude00")

any_text = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40),
    st.lists(st.sampled_from(ODD_CHARACTERS), max_size=12).map("".join),
    st.just("\U0001f600" * 10_000),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), any_text,
    st.sampled_from(("", " ", "0", "5", "abc", "1e20", "2**70", "0001-01-01 00:00:00", "9999-12-31 23:59:59")),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


def readable(text: str) -> str:
    """`text` as the bridge reads it from JSON: whole surrogate pairs joined, halves as U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
