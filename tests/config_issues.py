"""The smallest valid config and the located errors of loading one, for the tests of config validation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config

# Lines 1-4 of most config tests: the smallest valid config, so each test's mistake is the only one.
BASE = """\
gateway:
  simulator: true
server:
  api_keys: [key-1]
"""


def issues(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The error lines of loading `path`, with the file shown as `rules.yaml`."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={} if env is None else env)
    return [str(issue).replace(str(path), "rules.yaml", 1) for issue in caught.value.errors]
