"""`python -m benchmarks [--quick] [--json PATH]`: measure B1-B9, print the table, write JSON.

Exit status 1 when a figure misses its budget by more than the noise margin (FAIL), 0
otherwise, so CI can run `--quick` on a busy machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from benchmarks import (
    b1_health,
    b2_b3_start_stop,
    b4_memory,
    b5_loop,
    b6_logging,
    b7_scrape,
    b8_imports,
    b9_image,
)
from benchmarks.core import FULL, QUICK, Figure, Plan, error_figure
from benchmarks.procs import kill_all
from benchmarks.report import (
    command_line,
    legend,
    machine,
    markdown,
    now,
    revision,
    table,
    uptime,
    write_json,
)

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"

# In the order they run: process figures first, the in-process log benchmark last.
MEASURES: dict[str, tuple[str, Callable[[Plan], list[Figure]]]] = {
    "B1": ("health check latency", b1_health.measure),
    "B2": ("start to ready, and B3 stop latency", b2_b3_start_stop.measure),
    "B4": ("idle memory", b4_memory.measure),
    "B5": ("loop overhead", b5_loop.measure),
    "B7": ("scrape latency and throughput", b7_scrape.measure),
    "B8": ("import cost", b8_imports.measure),
    "B6": ("log throughput", b6_logging.measure),
}
_ALSO = {"B2": ("B3",)}  # B3 is measured on the processes B2 starts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: under 90 s, for CI")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--only", help="comma-separated figure ids to run, e.g. B1,B5 (B2 and B3 run together)"
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the table with date and machine, for the README"
    )
    parser.add_argument(
        "--image-own-mb",
        type=float,
        help="B9: size of the runtime image's own layers in MB (the image less its base)",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI timeout) unwinds like Ctrl+C, so the finally below kills the children."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    only = {part.strip().upper() for part in args.only.split(",")} if args.only else None
    signal.signal(signal.SIGTERM, _terminate)
    started, date = time.monotonic(), now()
    load_before = uptime()
    figures: list[Figure] = []
    try:
        for figure_id, (what, measure) in MEASURES.items():
            if only is not None and not only & {figure_id, *_ALSO.get(figure_id, ())}:
                continue
            print(f"measuring {figure_id}: {what} ...", file=sys.stderr, flush=True)
            try:
                figures += measure(plan)
            except Exception as exc:  # noqa: BLE001 - one broken figure must not hide the rest
                figures.append(error_figure(figure_id, what, exc))
    finally:
        kill_all()
    if only is None or "B9" in only:
        figures.append(b9_image.figure(args.image_own_mb))
    seconds = time.monotonic() - started
    meta = {
        "date": date,
        "command": command_line(),
        "mode": plan.name,
        "revision": revision(),
        "duration_seconds": round(seconds, 1),
        "machine": machine(),
        "load_before": load_before,
        "load_after": uptime(),
    }
    print(table(figures))
    print()
    print(legend())
    print(f"{plan.name} run of {meta['revision']}: {seconds:.0f} s; load before: {load_before}")
    print(f"load after: {meta['load_after']}")
    write_json(args.json, figures, meta)
    print(f"JSON: {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(figures, meta), encoding="utf-8")
        print(f"Markdown: {args.markdown}")
    return 1 if any(f.verdict == "FAIL" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
