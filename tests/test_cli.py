"""The `check` and `run` commands, `main`'s error handling, and the logging they set up."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop

import bridge
from bridge.cli import EXIT_BAD_INPUT, EXIT_OK, build_parser, main
from bridge.config import Config, Secret
from bridge.eventloop import LoopFactory
from bridge.logs import log_context, redact, register_secrets, setup_logging
from repo_paths import EXAMPLE_CONFIG, REPO

WriteConfig = Callable[[str], Path]
AppRun = Callable[[Config, LoopFactory | None], int]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Puts the root logger back as it was, since `main` and `setup_logging` reconfigure it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> Callable[[AppRun], None]:
    """Installs a stand-in `bridge.app` module whose run() is the given function (the service is tested elsewhere)."""

    def install(run: AppRun) -> None:
        module = types.ModuleType("bridge.app")
        module.run = run  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "bridge.app", module)
        monkeypatch.setattr(bridge, "app", module, raising=False)

    return install


# --- check ---------------------------------------------------------------------------------------


def test_check_example_exits_0(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`check` on rules.yaml.example prints `FILE: ok` and a summary, and exits 0."""
    monkeypatch.delenv("BRIDGE_API_KEY", raising=False)
    assert main(["check", "-c", str(EXAMPLE_CONFIG)]) == EXIT_OK
    ok, summary = capsys.readouterr().out.splitlines()
    assert ok == f"{EXAMPLE_CONFIG}: ok"
    assert summary.startswith("8 rules, 1 webhook target, 2 inbound endpoints; gateway: simulator;")


def test_check_names_postgresql_storage_without_its_password(write_config: WriteConfig,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """With storage.url, `check`'s summary names the PostgreSQL server and database, not a SQLite file, and
    shows neither the URL's user nor its password."""
    path = write_config("gateway: {simulator: true}\nserver: {enabled: false}\n"
                        "storage: {url: 'postgresql://bridge:hunter2@db:5432/bridge'}\n")
    assert main(["check", "-c", str(path)]) == EXIT_OK
    summary = capsys.readouterr().out.splitlines()[1]
    assert summary.endswith("; storage: postgresql://db:5432/bridge") and "hunter2" not in summary


def test_check_bad_config_prints_every_error(write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` on an invalid config prints each located error on stderr and exits 1."""
    path = write_config("gateway: {simulator: true}\nserver: {enabled: false}\n"
                        "poll:\n  interval: 15 sec\n  lookbak: 2d\n")
    assert main(["check", "-c", str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:4: poll.interval: bad duration '15 sec' (use 500ms, 15s, 5m, 2h, 1d)",
        f"{path}:5: poll.lookbak: unknown key (did you mean 'lookback'?)",
    ]


def test_missing_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config file that does not exist is one line on stderr, exit 1, no traceback."""
    missing = tmp_path / "nope.yaml"
    assert main(["check", "-c", str(missing)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == f"sms-bridge: cannot read {missing}: No such file or directory\n"


def test_config_defaults_to_rules_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Without -c, the config is ./rules.yaml."""
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "sms-bridge: cannot read rules.yaml: No such file or directory\n"


def test_unreadable_directory_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory given as the config is reported as unreadable in one line."""
    assert main(["check", "-c", str(tmp_path)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"sms-bridge: cannot read {tmp_path}: Is a directory\n"


# --- run -----------------------------------------------------------------------------------------


def test_run_hands_the_loaded_config_to_the_app(fake_app: Callable[[AppRun], None]) -> None:
    """`run` loads the config and returns what bridge.app.run returns."""
    seen: list[Config] = []
    fake_app(lambda config, loop: seen.append(config) or 0)
    assert main(["run", "-c", str(EXAMPLE_CONFIG)]) == EXIT_OK
    assert [c.source for c in seen] == [EXAMPLE_CONFIG]


def test_run_takes_uvloop_when_it_is_installed(fake_app: Callable[[AppRun], None]) -> None:
    """`run` hands the app uvloop's event loop by default when uvloop can be imported."""
    seen: list[LoopFactory | None] = []
    fake_app(lambda config, loop: seen.append(loop) or 0)
    assert main(["run", "-c", str(EXAMPLE_CONFIG)]) == EXIT_OK
    assert seen == [uvloop.new_event_loop]


def test_run_with_loop_asyncio_takes_asyncio_s_own(fake_app: Callable[[AppRun], None]) -> None:
    """`run --loop asyncio` runs on asyncio's own event loop although uvloop is installed."""
    seen: list[LoopFactory | None] = []
    fake_app(lambda config, loop: seen.append(loop) or 0)
    assert main(["run", "-c", str(EXAMPLE_CONFIG), "--loop", "asyncio"]) == EXIT_OK
    assert seen == [None]


def test_run_without_uvloop_takes_asyncio_s_own(fake_app: Callable[[AppRun], None],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Where uvloop is not installed, `run` runs on asyncio's own event loop."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it fails, as where it is not installed
    seen: list[LoopFactory | None] = []
    fake_app(lambda config, loop: seen.append(loop) or 0)
    assert main(["run", "-c", str(EXAMPLE_CONFIG)]) == EXIT_OK
    assert seen == [None]


def test_run_with_loop_uvloop_but_no_uvloop_exits_1(fake_app: Callable[[AppRun], None],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`run --loop uvloop` where uvloop is not installed exits 1 with one line saying how to install it."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    started: list[Config] = []
    fake_app(lambda config, loop: started.append(config) or 0)
    assert main(["run", "-c", str(EXAMPLE_CONFIG), "--loop", "uvloop"]) == EXIT_BAD_INPUT
    assert started == []
    assert capsys.readouterr().err == ("sms-bridge: --loop uvloop: uvloop is not installed; pip install "
                                       "'smsgateway24-bridge[uvloop]', or run with --loop asyncio\n")


def test_run_with_bad_config_exits_1(write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """`run` with an invalid config prints the errors and exits 1 without starting."""
    path = write_config("gateway: {simulator: true}\nserver: {api_keys: []}\n")
    assert main(["run", "-c", str(path)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(f"{path}:2: server.api_keys: needs at least one key")


def test_run_keeps_config_secrets_out_of_logs(write_config: WriteConfig, fake_app: Callable[[AppRun], None],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Once `run` has loaded the config, a secret value logged by mistake shows as ***."""
    path = write_config("gateway: {simulator: true}\nserver: {api_keys: [hunter2-key-secret]}\n")
    fake_app(lambda config, loop: logging.getLogger("bridge.app").warning(
        "key is %s", config.server.api_keys[0].reveal()) or 0)
    assert main(["run", "-c", str(path)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "key is ***" in err and "hunter2-key-secret" not in err


# --- options, help, version ----------------------------------------------------------------------


def test_log_options_before_or_after_the_command(fake_app: Callable[[AppRun], None],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--log-level and --log-format are accepted before the command and after it."""
    fake_app(lambda config, loop: logging.getLogger("bridge.app").debug("started") or 0)
    assert main(["--log-format", "json", "run", "--log-level", "debug", "-c", str(EXAMPLE_CONFIG)]) == EXIT_OK
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["msg"] == "started"


def test_usage_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad option is a usage error with exit code 1 (2 means an upstream failure)."""
    with pytest.raises(SystemExit) as exited:
        main(["check", "--log-level", "loud"])
    assert exited.value.code == EXIT_BAD_INPUT
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the program name and version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"sms-bridge {bridge.__version__}\n"


@pytest.mark.parametrize("command", ["check", "run"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`COMMAND --help` names -c/--config with its FILE argument and the logging options, and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: sms-bridge {command}" in out
    config_line = next(line for line in out.splitlines() if "--config" in line)
    assert re.search(r"(^|\s)-c\b", config_line) and "FILE" in config_line
    assert "--log-level" in out and "--log-format" in out


@pytest.mark.parametrize("spelling", [["-c", "my.yaml"], ["--config", "my.yaml"], ["--config=my.yaml"]])
@pytest.mark.parametrize("command", ["check", "run"])
def test_config_option_spellings(command: str, spelling: list[str]) -> None:
    """`-c FILE`, `--config FILE` and `--config=FILE` all name the config file."""
    assert build_parser().parse_args([command, *spelling]).config == "my.yaml"


def test_python_dash_m_bridge_version() -> None:
    """`python -m bridge --version` works as a process."""
    done = subprocess.run([sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"sms-bridge {bridge.__version__}\n")


# --- logging -------------------------------------------------------------------------------------


def test_text_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Text logs are `TIME LEVEL logger: message key=value`, with context ids and extras."""
    setup_logging("info", "text")
    with log_context(request_id="req_1"):
        logging.getLogger("bridge.poller").info("polled %d", 3, extra={"note": "two words"})
    line = capsys.readouterr().err.rstrip("\n")
    stamp, rest = line.split(" ", 1)
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"
    assert rest == 'INFO bridge.poller: polled 3 note="two words" request_id=req_1'


def test_json_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON logs carry ts, level, logger, msg and the extras, including the event id of the context."""
    setup_logging("info", "json")
    with log_context(event_id="evt_1"):
        logging.getLogger("bridge.delivery").warning("attempt %d failed", 2, extra={"status": 503})
    record = json.loads(capsys.readouterr().err)
    assert record.pop("ts").endswith("Z")
    assert record == {"level": "WARNING", "logger": "bridge.delivery", "msg": "attempt 2 failed",
                      "status": 503, "event_id": "evt_1"}


def test_log_context_ends_with_its_block(capsys: pytest.CaptureFixture[str]) -> None:
    """Ids added by log_context are gone once its block ends."""
    setup_logging("info", "json")
    with log_context(request_id="req_1"):
        pass
    logging.getLogger("bridge").info("after")
    assert "request_id" not in json.loads(capsys.readouterr().err)


def test_level_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    """Records below the configured level are not written."""
    setup_logging("warning", "text")
    logging.getLogger("bridge").info("quiet")
    assert capsys.readouterr().err == ""


def test_registered_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """A registered secret is replaced by *** in messages, extras and tracebacks."""
    setup_logging("info", "json")
    register_secrets([Secret("hunter2-log-secret")])
    try:
        raise RuntimeError("token hunter2-log-secret refused")
    except RuntimeError:
        logging.getLogger("bridge").exception("failed for hunter2-log-secret", extra={"key": "hunter2-log-secret"})
    err = capsys.readouterr().err
    assert "hunter2-log-secret" not in err and json.loads(err)["key"] == "***"


def test_redact() -> None:
    """redact() replaces each secret, the longest first, and ignores empty ones."""
    assert redact("a abc b", [Secret("abc"), "a", ""]) == "*** *** b"
