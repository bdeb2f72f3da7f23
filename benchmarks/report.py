"""The table on stdout, the JSON file, and what machine and load the figures came from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.core import NOISE_MARGIN, Figure

COLUMNS = ("figure", "what", "subject", "baseline", "ratio", "budget", "verdict")


def machine() -> dict[str, Any]:
    """What the README's Performance section quotes: cores, memory, Python, OS."""
    mem_kib = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),  # what `nproc` prints
        "memory_gib": round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def revision() -> str:
    """The commit measured, with `+dirty` when src/ has changes that are not committed."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def uptime() -> str:
    """The `uptime` line: other work on this 2-core machine moves the figures."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _value(figure: Figure, value: float | None) -> str:
    if value is None:
        return "-"
    if figure.unit == "exits":
        return f"{value:.0f} {figure.unit}"
    if figure.unit in ("ms", "MiB") or abs(value) < 100:
        return f"{value:.3g} {figure.unit}" if abs(value) < 10 else f"{value:.1f} {figure.unit}"
    return f"{value:,.0f} {figure.unit}"


def rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for figure in figures:
        ratio = figure.ratio
        out.append(
            (
                figure.id,
                figure.what,
                f"{figure.subject}: {_value(figure, figure.subject_value)}",
                f"{figure.baseline}: {_value(figure, figure.baseline_value)}"
                if figure.baseline != "-"
                else "-",
                "-" if ratio is None else f"{ratio:.2f}x",
                figure.budget_text,
                figure.verdict,
            )
        )
    return out


def table(figures: list[Figure]) -> str:
    """A Markdown table: readable in a terminal, and pasted as is into the README."""
    lines = [COLUMNS, *rows(figures)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = [_md(lines[0], widths), _md(tuple("-" * w for w in widths), widths)]
    text += [_md(line, widths) for line in lines[1:]]
    notes = [f"- {f.id} {f.what}: {f.note}" for f in figures if f.note]
    return "\n".join(text + (["", *notes] if notes else []))


def _md(cells: tuple[str, ...], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def legend() -> str:
    margin = round(NOISE_MARGIN * 100)
    return (
        "ratio = subject median / baseline median, both measured in this run. "
        f"PASS: within budget; MISS: over budget by at most {margin} % (noise on this "
        "machine, CI stays green); FAIL: over by more, a failed check, or an error."
    )


def markdown(figures: list[Figure], meta: dict[str, Any]) -> str:
    """The measured part of the README's Performance section: where, when, how, the table."""
    box = meta["machine"]
    return "\n".join(
        [
            f"Measured {meta['date']} on {box['nproc']} cores ({box['cpu']}), "
            f"{box['memory_gib']} GiB of memory, {box['implementation']} {box['python']}, "
            f"{box['platform']}; commit {meta['revision']}; {meta['mode']} run, "
            f"{meta['duration_seconds']:.0f} s.",
            "",
            f"Command: `{meta['command']}`",
            "",
            f"Load before: `{meta['load_before']}`; after: `{meta['load_after']}`",
            "",
            table(figures),
            "",
            legend(),
            "",
        ]
    )


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**meta, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line() -> str:
    """The command as run from the repository root (paths in options kept as given)."""
    return " ".join(["python -m benchmarks", *sys.argv[1:]])
