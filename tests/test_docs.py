"""The README's code and the deploy files do what they say: snippets run, units and compose files point at real
commands, the example refers only to what exists."""

from __future__ import annotations

import base64
import re
import shlex
import time

import pytest
import yaml

from bridge.cli import build_parser
from bridge.config import load_config
from bridge.signing import signing_key, webhook_headers
from repo_paths import EXAMPLE_CONFIG, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_block(heading: str, language: str) -> str:
    """The first ```language block after `heading` in the README."""
    section = README[README.index(heading):]
    found = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert found, f"no {language} block after {heading!r}"
    return found.group(1)


def test_python_signature_check_accepts_the_bridges_signature_and_refuses_a_changed_body() -> None:
    """The README's Python receiver verifies a body the bridge signed and refuses one changed on the way."""
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789").decode()
    namespace: dict[str, object] = {"SECRET": secret}
    exec(readme_block("### Verifying a webhook's signature", "python"), namespace)  # noqa: S102
    body = b'{"id":"evt_1","type":"sms.received"}'
    headers = webhook_headers("evt_1", int(time.time()), body, signing_key(secret))
    verified_event = namespace["verified_event"]
    assert verified_event(body, {name.title(): value for name, value in headers.items()})["id"] == "evt_1"
    with pytest.raises(namespace["WebhookVerificationError"]):  # type: ignore[call-overload]
        verified_event(body.replace(b"received", b"status"), headers)


def test_quick_start_makes_a_virtual_environment_first() -> None:
    """The quick start creates and activates a virtual environment before the first pip install."""
    quick = readme_block("## Quick start", "sh")
    assert quick.index("python3 -m venv") < quick.index(". .venv/bin/activate") < quick.index("pip install")


def test_systemd_unit_runs_commands_that_exist() -> None:
    """deploy/sms-bridge.service checks and runs the config with real `sms-bridge` commands, stopped by SIGTERM."""
    unit = (REPO / "deploy" / "sms-bridge.service").read_text(encoding="utf-8")
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    for key in ("ExecStartPre", "ExecStart"):
        program, *argv = shlex.split(lines[key])
        assert program.endswith("/sms-bridge")
        assert build_parser().parse_args(argv).config == "/etc/sms-bridge/rules.yaml"
    assert lines["KillSignal"] == "SIGTERM" and lines["Restart"] == "on-failure"


def test_compose_file_runs_the_image_with_config_and_data_volumes() -> None:
    """deploy/compose.yaml builds the repository's image, mounts the config read-only and keeps /data."""
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["sms-bridge"]
    assert (REPO / "deploy" / service["build"] / "Dockerfile").is_file()
    assert build_parser().parse_args(service["command"]).config == "/config/rules.yaml"
    assert "./config:/config:ro" in service["volumes"] and "sms-data:/data" in service["volumes"]
    assert "sms-data" in compose["volumes"]


def test_replicas_compose_file_runs_two_replicas_on_postgresql_behind_one_proxy() -> None:
    """deploy/compose-replicas.yaml runs PostgreSQL and two replicas of the image on one config, and the proxy in
    front of them sends to both; that config is valid and on PostgreSQL."""
    compose = yaml.safe_load((REPO / "deploy" / "compose-replicas.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    replicas = [services[name] for name in ("bridge-1", "bridge-2")]
    assert all(r["volumes"] == ["./rules-replicas.yaml:/config/rules.yaml:ro"] for r in replicas)
    assert all(r["depends_on"]["db"]["condition"] == "service_healthy" for r in replicas)
    assert services["db"]["image"].startswith("postgres:")
    proxy = (REPO / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server bridge-1:8080" in proxy and "server bridge-2:8080" in proxy
    env = {"PGPASSWORD": "pw", "BRIDGE_API_KEY": "k" * 20, "SMSGW_EMAIL": "a@b.c", "SMSGW_PASSWORD": "pw"}
    config = load_config(REPO / "deploy" / "rules-replicas.yaml.example", env=env)
    assert config.storage.url is not None and config.storage.url.reveal().startswith("postgresql://bridge:pw@db:")


def test_example_and_readme_point_only_at_what_exists() -> None:
    """Neither the example nor the README sends readers to a design document outside the repository."""
    assert "DESIGN" not in EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert "DESIGN" not in README
