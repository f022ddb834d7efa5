"""Shared fixtures."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Writes YAML text (dedented, so line 1 is the first line after the opening quotes) to tmp_path/rules.yaml."""

    def write(text: str) -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
