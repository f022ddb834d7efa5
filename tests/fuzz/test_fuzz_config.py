"""The config loader on generated input: it loads, or raises ConfigError whose every issue is located in the file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from fuzz_support import FUZZ, configs, environments, line_count, yaml_texts
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import Config, ConfigError, load_config

BASE = "gateway:\n  simulator: true\nserver:\n  enabled: false\n"


def load_checked(path: Path, text: str, env: Mapping[str, str]) -> Config | ConfigError:
    """Load `path` (holding `text`); a ConfigError must name the file and lines inside it, anything else fails."""
    try:
        return load_config(path, env=env)
    except ConfigError as exc:
        assert exc.errors, "a ConfigError lists at least one issue"
        for issue in exc.errors:
            assert issue.file == str(path), issue
            assert 1 <= issue.line <= line_count(text), (issue, line_count(text))
            assert issue.message, issue
        return exc


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


@FUZZ
@given(text=yaml_texts, env=environments)
def test_any_text_loads_or_gives_located_issues(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    """Arbitrary text (YAML fragments and junk) either loads or raises ConfigError with in-file lines."""
    load_checked(write(tmp_path, text), text, env)


@FUZZ
@given(structure=configs, env=environments)
def test_any_structure_loads_or_gives_located_issues(tmp_path: Path, structure: dict, env: dict[str, str]) -> None:
    """Generated config-shaped structures dumped to YAML either load or raise ConfigError with in-file lines."""
    text = yaml.safe_dump(structure, allow_unicode=True, sort_keys=False)
    load_checked(write(tmp_path, text), text, env)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_load_or_give_located_issues(tmp_path: Path, raw: bytes) -> None:
    """Arbitrary bytes (often not UTF-8) either load or raise ConfigError with in-file lines."""
    path = tmp_path / "rules.yaml"
    path.write_bytes(raw)
    load_checked(path, raw.decode("utf-8", "replace"), {})


_SECRET_FIELDS = (
    "gateway:\n  email: demo@example.com\n  password: ${SECRET}\n  token: ${SECRET}\n  webhook_secret: ${SECRET}\n"
    "  url: ${SECRET}\n  timeout: {junk}\n"
    "server:\n  api_keys: ['${SECRET}', {junk}]\n  listen: {junk}\n"
    "webhooks:\n  crm:\n    url: 'https://x.example/${SECRET}'\n    secret: ${SECRET}\n"
    "    headers: {Authorization: 'Bearer ${SECRET}', {junk}: 1}\n"
)


@FUZZ
@given(secret=st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="'\"{}[]#,&*!|>%@`"),
                      min_size=6, max_size=24).map(lambda s: "Zq9" + s),
       junk=st.sampled_from(("5m", "nope", "[1, 2]", "'${SECRET}'", "~", "{a: 1}", "-1")))
def test_secrets_never_appear_in_issues(tmp_path: Path, secret: str, junk: str) -> None:
    """Passwords, tokens, keys, webhook secrets, URLs and header values never appear in a config error."""
    text = _SECRET_FIELDS.replace("{junk}", junk)
    outcome = load_checked(write(tmp_path, text), text, {"SECRET": secret})
    if isinstance(outcome, ConfigError):
        assert secret not in str(outcome)


# --- inputs the generators above found (or that sit just past their reach), pinned ----------------


def test_a_rate_count_too_long_for_an_int_is_a_config_error(tmp_path: Path) -> None:
    """A loop_limit whose count has more digits than Python converts is reported, not raised as ValueError."""
    text = BASE + "safety:\n  loop_limit: " + "9" * 5000 + "/1s\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)


def test_a_regex_with_a_huge_repeat_count_is_a_config_error(tmp_path: Path) -> None:
    """A body_regex that re.compile rejects with OverflowError is reported, not raised."""
    text = BASE + "rules:\n  - name: a\n    match:\n      body_regex: 'a{99999999999}'\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)


def test_a_regex_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    """A body_regex that re.compile rejects with RecursionError is reported, not raised."""
    text = BASE + "rules:\n  - name: a\n    match:\n      body_regex: '" + "(" * 1500 + ")" * 1500 + "'\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)


def test_a_url_with_an_unclosed_ipv6_bracket_is_a_config_error(tmp_path: Path) -> None:
    """A URL that urlsplit rejects with ValueError is reported, not raised."""
    text = "gateway:\n  simulator: true\n  url: 'http://[::1'\nserver:\n  enabled: false\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)


def test_yaml_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    """A document nested deeper than the YAML parser can recurse is reported, not raised as RecursionError."""
    text = "rules: " + "[" * 3000 + "]" * 3000 + "\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)


def test_a_templates_dir_name_too_long_for_the_filesystem_is_a_config_error(tmp_path: Path) -> None:
    """A templates_dir the filesystem cannot even look up is reported, not raised as OSError."""
    text = BASE + "templates_dir: " + "a" * 5000 + "\n"
    assert isinstance(load_checked(write(tmp_path, text), text, {}), ConfigError)
