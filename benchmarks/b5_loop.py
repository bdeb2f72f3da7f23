"""B5: iterations per second of a no-op service with no sleep, next to the floor loops."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.core import BenchError, Figure, Plan, interleave, median
from benchmarks.procs import (
    LOOP_FLOOR,
    MODELS,
    NOOP,
    PYTHON,
    base_env,
    read_heartbeat,
    running,
    service_env,
    workspace,
)

WARMUP_SECONDS = 0.3  # let the first heartbeat writes and lazy imports pass


def measure(plan: Plan) -> list[Figure]:
    with workspace() as tmp:
        window = plan.loop_window_seconds
        runners: dict[str, Callable[[], float]] = {}
        for model in MODELS:
            runners[f"{model} floor"] = _runner(_floor_rate, model, tmp, window)
            runners[model] = _runner(_service_rate, model, tmp, window)
        samples = interleave(runners, plan.loop_rounds, 0)
    rate = {name: median(values) for name, values in samples.items()}
    return [
        Figure(
            "B5",
            f"loop iterations per second, {model}",
            f"noop_{model}.py",
            "prometheus loop, 1 counter" if model == "sync" else "bare asyncio loop",
            "it/s",
            rate[model],
            rate[f"{model} floor"],
            budget=0.4,
            higher_is_better=True,
            details={
                "subject_us_per_iteration": 1e6 / rate[model],
                "baseline_us_per_iteration": 1e6 / rate[f"{model} floor"],
            },
        )
        for model in MODELS
    ]


def _runner(
    rate: Callable[[str, Path, float], float], model: str, tmp: Path, window: float
) -> Callable[[], float]:
    return lambda: rate(model, tmp, window)


def _service_rate(model: str, tmp: Path, window: float) -> float:
    """Iterations between two heartbeats a window apart, over the time between them.

    The heartbeat carries `iterations` and the `ts` it was written at, so reading it costs
    the service nothing; metrics and heartbeat stay on, as in production.
    """
    heartbeat = tmp / "loop-heartbeat.json"
    with running([PYTHON, str(NOOP[model])], service_env(heartbeat, 0), tmp) as proc:
        proc.wait_event("startup_success")
        time.sleep(WARMUP_SECONDS)
        first = read_heartbeat(heartbeat)
        time.sleep(window)
        last = read_heartbeat(heartbeat)
        proc.stop()
    seconds = last["ts"] - first["ts"]
    if seconds < window / 2:
        raise BenchError(f"noop_{model}.py: heartbeat not written during {window} s")
    return float(last["iterations"] - first["iterations"]) / float(seconds)


def _floor_rate(model: str, tmp: Path, window: float) -> float:
    """The floor counts its own iterations and prints them, with the loop's time, on SIGTERM."""
    with running([PYTHON, str(LOOP_FLOOR[model]), "0", "count"], base_env(), tmp) as proc:
        proc.wait_ready_line()
        time.sleep(WARMUP_SECONDS + window)
        proc.stop()
        _, line = proc.wait_line(lambda line: line.startswith("count"))
    _, iterations, seconds = line.split()
    return int(iterations) / float(seconds)
