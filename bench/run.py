"""Run every benchmark in bench/ and print one table of their figures, with the machine they ran on.

    python bench/run.py [--markdown] [--timeout SECONDS] [NAME ...]

Each script (all of bench/*.py but this one, the whole-bridge scenario first, or only the NAMEs given) runs
in its own process, one after the other, with `--json`, and prints a list of {"figure", "value", "unit",
"baseline", "target", "met"} (optionally with "spread": [lowest, highest] over the script's rounds). The table
shows each figure with its baseline, value/baseline, target, whether the target is met, and its spread. A
script that fails (exit status, timeout, output that is not that JSON) is one row with its error; the others
still run. The exit status is 1 when a script failed, else 0 (a missed target is reported, not an error).
`--markdown` prints the table as Markdown, for the README's "Performance" section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
COLUMNS = ("script", "figure", "value", "unit", "baseline", "ratio", "target", "met", "spread")
ERROR_CHARS = 160
FIRST = "whole_bridge.py"  # the bridge as users run it comes before the benches of its parts


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a figure of a script, or the error that stopped the script."""

    script: str
    figure: str
    value: Any = None
    unit: str = ""
    baseline: Any = None
    target: Any = None
    met: bool | None = None
    error: str | None = None
    spread: tuple[Any, Any] | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline, when both are numbers and the baseline is not zero."""
        if _is_number(self.value) and _is_number(self.baseline) and self.baseline:
            return self.value / self.baseline
        return None

    def cells(self) -> tuple[str, ...]:
        """The row's cells, formatted, in COLUMNS order."""
        if self.error is not None:
            return (self.script, self.figure, f"ERROR: {self.error}", "", "", "", "", "", "")
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        spread = "-" if self.spread is None else f"{_fmt(self.spread[0])}–{_fmt(self.spread[1])}"
        return (self.script, self.figure, _fmt(self.value), self.unit, _fmt(self.baseline), _fmt(self.ratio),
                _fmt(self.target), met, spread)


def scripts(names: Sequence[str]) -> list[Path]:
    """The benchmark scripts to run: the given names (with or without .py), else every one but this file,
    the whole-bridge scenario first."""
    if names:
        return [BENCH_DIR / (name if name.endswith(".py") else f"{name}.py") for name in names]
    found = (p for p in BENCH_DIR.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    return sorted(found, key=lambda p: (p.name != FIRST, p.name))


def run_script(script: Path, timeout: float) -> list[Row]:
    """Run one script with --json; its figures as rows, or one error row."""
    name = script.stem
    if not script.is_file():
        return [Row(name, "-", error="no such script")]
    began = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [Row(name, "-", error=f"did not finish within {timeout:g}s")]
    if done.returncode != 0:
        return [Row(name, "-", error=f"exit status {done.returncode}: {_last_line(done.stderr or done.stdout)}")]
    try:
        figures = parse_figures(done.stdout)
    except ValueError as exc:
        return [Row(name, "-", error=str(exc))]
    rows = [Row(name, str(f.get("figure")), f.get("value"), str(f.get("unit") or ""), f.get("baseline"),
                f.get("target"), f.get("met"), spread=_spread(f.get("spread"))) for f in figures]
    return rows + [Row(name, "(run time)", round(time.monotonic() - began, 1), "s")]


def parse_figures(output: str) -> list[dict[str, Any]]:
    """The JSON list of figure objects a script printed (text before it, such as progress lines, is skipped)."""
    start = output.find("[")
    while start != -1:
        try:
            data, _ = json.JSONDecoder().raw_decode(output, start)
        except ValueError:
            start = output.find("[", start + 1)
            continue
        if isinstance(data, list) and all(isinstance(item, dict) and "figure" in item for item in data):
            return data
        start = output.find("[", start + 1)
    raise ValueError(f"no JSON list of figures in the output: {_last_line(output)!r}")


def machine() -> str:
    """Cores, CPU model (when known), Python version and platform."""
    parts = [f"{os.cpu_count()} cores"]
    model = _cpu_model()
    if model:
        parts.append(model)
    parts += [f"Python {platform.python_version()} ({platform.python_implementation()})", platform.platform()]
    return ", ".join(parts)


def render_text(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (numbers right-aligned)."""
    right = {"value", "baseline", "ratio", "target"}
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the scripts, print the table; 1 when a script failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these scripts (default: all in bench/)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one script may take (default: 900)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for script in scripts(args.names):
        print(f"running {script.name} …", file=sys.stderr, flush=True)
        rows += run_script(script, args.timeout)
    if args.markdown:
        print(f"Measured on: {machine()}\n")
        print(render_markdown(rows))
    else:
        print(f"machine: {machine()}\n")
        print(render_text(rows))
    return 1 if any(row.error is not None for row in rows) else 0


def _spread(value: Any) -> tuple[Any, Any] | None:
    """A figure's [lowest, highest] over its rounds, when it gave one."""
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS - 1] + "…"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


if __name__ == "__main__":
    sys.exit(main())
