"""B1: wall time of `app-health` against a running service, next to the 3-line floor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.core import Figure, Plan, interleave, median
from benchmarks.procs import (
    BASELINES,
    BIN,
    COMMAND,
    PYTHON,
    base_env,
    prefer,
    run_timed,
    running,
    service_env,
    workspace,
)


def measure(plan: Plan) -> list[Figure]:
    with workspace() as tmp:
        heartbeat = tmp / "heartbeat.json"
        service_argv = [COMMAND[prefer("sync")]]  # either model writes the same heartbeat
        with running(service_argv, service_env(heartbeat, 1.0), tmp) as service:
            service.wait_event("startup_success")
            # As in the Docker image: APP_HEARTBEAT_FILE names the file, nothing else is read.
            env = base_env(APP_HEARTBEAT_FILE=str(heartbeat))
            commands = {
                "pass": [PYTHON, "-c", "pass"],
                "floor": [PYTHON, str(BASELINES / "health_floor.py")],
                "app-health": [str(BIN / "app-health")],
            }
            samples = interleave(
                {name: _timer(argv, env, tmp) for name, argv in commands.items()},
                plan.rounds,
                plan.warmup,
            )
    ms = {name: median(values) * 1000 for name, values in samples.items()}
    return [
        Figure(
            "B1",
            "health check latency",
            "app-health",
            "3-line heartbeat reader",
            "ms",
            ms["app-health"],
            ms["floor"],
            budget=1.15,
        ),
        Figure(
            "B1",
            "health check vs bare interpreter",
            "app-health",
            "python -c pass",
            "ms",
            ms["app-health"],
            ms["pass"],
        ),
        Figure(
            "B1",
            "3-line floor vs bare interpreter",
            "3-line heartbeat reader",
            "python -c pass",
            "ms",
            ms["floor"],
            ms["pass"],
            note="about 1.7x is usual",
        ),
    ]


def _timer(argv: list[str], env: dict[str, str], cwd: Path) -> Callable[[], float]:
    return lambda: run_timed(argv, env, cwd)[0]
