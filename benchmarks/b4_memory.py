"""B4: resident memory of an idle service, 3 s after it became ready, next to the floor."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.core import Figure, Plan, median
from benchmarks.procs import (
    BASELINES,
    COMMAND,
    MODELS,
    PYTHON,
    Running,
    rss_mib,
    service_env,
    workspace,
)

SETTLED_SECONDS = 3.0  # start-up garbage is gone, no traffic yet
LOOP_SLEEP_SECONDS = 1.0  # a few iterations run: their bookkeeping is part of the footprint
FLOOR = [PYTHON, str(BASELINES / "prom_floor.py"), str(LOOP_SLEEP_SECONDS)]
COMMANDS = {model: [COMMAND[model]] for model in MODELS} | {"floor": FLOOR}
if "async" in MODELS:  # for an info row: the floor plus what `import asyncio` costs
    COMMANDS["floor+asyncio"] = [*FLOOR, "asyncio"]


def measure(plan: Plan) -> list[Figure]:
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with workspace() as tmp:
        for _ in range(plan.memory_rounds):
            for name, rss in _one_round(tmp).items():
                samples[name].append(rss)
    mib = {name: median(values) for name, values in samples.items()}
    figures = [
        Figure(
            "B4",
            f"idle RSS, {model}",
            f"app-{model}",
            "prometheus floor",
            "MiB",
            mib[model],
            mib["floor"],
            budget=1.10,
        )
        for model in MODELS
    ]
    if "async" in MODELS:
        figures.append(
            Figure(
                "B4",
                "idle RSS, async, against a floor that imports asyncio",
                "app-async",
                "prometheus floor + import asyncio",
                "MiB",
                mib["async"],
                mib["floor+asyncio"],
                note="what asyncio itself costs is in the floor here; "
                "the budget uses the row above",
            )
        )
    return figures


def _one_round(tmp: Path) -> dict[str, float]:
    """Start all processes together (memory does not mind sharing the CPU), read each RSS."""
    with ExitStack() as stack:
        procs: dict[str, Running] = {}
        for name, argv in COMMANDS.items():
            env = service_env(tmp / f"{name}.json", LOOP_SLEEP_SECONDS)
            procs[name] = proc = Running(argv, env, tmp)
            stack.callback(proc.close)
        ready = {name: proc.started + _ready_after(proc) for name, proc in procs.items()}
        rss: dict[str, float] = {}
        for name in sorted(procs, key=ready.__getitem__):
            time.sleep(max(0.0, ready[name] + SETTLED_SECONDS - time.perf_counter()))
            rss[name] = rss_mib(procs[name].proc.pid)
        return rss


def _ready_after(proc: Running) -> float:
    if proc.argv[0] == PYTHON:  # a floor: it prints `ready PORT`
        return proc.wait_ready_line()[0]
    return proc.wait_event("startup_success")[0]
