"""B6: JSON records per second through stdlib logging to a file, vs python-json-logger.

Both run in this process, on the same logger and handler; only the formatter changes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from app.logging_setup import JsonFormatter
from benchmarks.baselines.json_logger import json_logger_formatter
from benchmarks.core import Figure, Plan, interleave, median
from benchmarks.procs import workspace

# The §4 identity fields, as configure_logging() builds them.
IDENTITY = {
    "service": "python-service",
    "instance": "bench-host",
    "env": "prod",
    "run_id": str(uuid.uuid4()),
}
LIFECYCLE = {"version": "1.2.3", "commit": "0123456789ab", "config_source": "defaults+env"}


def measure(plan: Plan) -> list[Figure]:
    formatters: dict[str, logging.Formatter] = {
        "template": JsonFormatter(IDENTITY, LIFECYCLE),
        "python-json-logger": json_logger_formatter(IDENTITY),
    }
    with workspace() as tmp:
        files = {name: tmp / f"{name}.log" for name in formatters}
        runners = {name: _rate(formatters[name], files[name], plan) for name in formatters}
        samples = interleave(runners, plan.log_rounds, plan.warmup)
        sample_lines = {name: _first_line(path) for name, path in files.items()}
    rate = {name: median(values) for name, values in samples.items()}
    return [
        Figure(
            "B6",
            "JSON log records per second",
            "app JsonFormatter",
            "python-json-logger",
            "rec/s",
            rate["template"],
            rate["python-json-logger"],
            budget=1.2,
            higher_is_better=True,
            details={"lines": sample_lines},
        )
    ]


def _rate(formatter: logging.Formatter, path: Path, plan: Plan) -> Callable[[], float]:
    """A runner: log `plan.log_records` typical records (one `extra`) through a FileHandler."""

    def run() -> float:
        handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        handler.setFormatter(formatter)
        logger = logging.getLogger(f"app.billing.{path.stem}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            started = time.perf_counter()
            for number in range(plan.log_records):
                logger.info("invoice sent", extra={"invoice_id": number})
            elapsed = time.perf_counter() - started
        finally:
            logger.removeHandler(handler)
            handler.close()
        return plan.log_records / elapsed

    return run


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8") as file:
        return file.readline().strip()
