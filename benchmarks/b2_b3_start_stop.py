"""B2 start to ready and B3 stop latency: each process is timed from exec to ready to exit."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core import BenchError, Figure, Plan, interleave, median
from benchmarks.procs import (
    BASELINES,
    COMMAND,
    LOOP_FLOOR,
    MODELS,
    NOOP,
    PYTHON,
    Running,
    http_get,
    running,
    service_env,
    workspace,
)

IDLE_SLEEP_SECONDS = 30.0  # a stop must not wait for the sleep to end
SETTLE_SECONDS = 0.1  # after ready: the first iteration is done, the loop is waiting
PROM_FLOOR = str(BASELINES / "prom_floor.py")
# Per model: the floor its start is compared with (B2), and the one its idle stop is (B3).
# "floor" is the prometheus floor; the others are the asyncio model's own.
START_FLOOR = {"sync": "floor", "async": "floor+asyncio"}
STOP_FLOOR = {"sync": "floor", "async": "asyncio floor"}
FLOOR_NAMES = {"floor": "prometheus floor", "floor+asyncio": "prometheus floor + import asyncio"}


@dataclass(frozen=True)
class Life:
    ready: float  # exec to "ready": startup_success logged and /metrics answered
    success: float | None  # exec to the startup_success record (services only)
    stop: float  # signal to exit


@dataclass(frozen=True)
class BusyStop:
    stop: float | None  # None: no exit within the timeout (a hang)
    clean: bool  # exit status 0, one shutting_down and shutdown_complete, heartbeat removed


def measure(plan: Plan) -> list[Figure]:
    with workspace() as tmp:
        lives = _idle_lives(tmp, plan)
        busy = {model: _busy_stops(tmp, plan, model) for model in MODELS}
    ready = {name: median([life.ready for life in runs]) * 1000 for name, runs in lives.items()}
    stop = {name: median([life.stop for life in runs]) * 1000 for name, runs in lives.items()}
    figures = [_start_figure(model, lives[model], ready) for model in MODELS]
    figures += [
        _stop_figure(model, "idle", stop[model], stop[STOP_FLOOR[model]]) for model in MODELS
    ]
    for model, (subject, floor) in busy.items():
        latencies = [run.stop * 1000 for run in subject if run.stop is not None and run.clean]
        floor_latencies = [run.stop * 1000 for run in floor if run.stop is not None]
        if not (latencies and floor_latencies):
            raise BenchError(f"B3 busy, {model}: no clean stop to time")
        figures.append(_stop_figure(model, "busy", median(latencies), median(floor_latencies)))
        clean = sum(run.clean for run in subject)
        hangs = sum(run.stop is None for run in subject)
        figures.append(
            Figure(
                "B3",
                f"clean exits after a signal in a busy loop, {model}",
                f"noop_{model}.py",
                "signals sent",
                "exits",
                clean,
                len(subject),
                check=clean == len(subject) and hangs == 0,
                requirement="all clean, no hang",
                details={"hangs": hangs},
            )
        )
    return figures


def _start_figure(model: str, lives: list[Life], ready: dict[str, float]) -> Figure:
    floor = START_FLOOR[model]
    details = {"startup_success_ms": median([life.success or 0.0 for life in lives]) * 1000}
    if floor != "floor":  # the plain prometheus floor too, to show what the extra costs
        details["floor_ms"] = ready["floor"]
    return Figure(
        "B2",
        f"start to ready, {model}",
        f"app-{model}",
        FLOOR_NAMES[floor],
        "ms",
        ready[model],
        ready[floor],
        budget=1.25,
        details=details,
    )


def _stop_figure(model: str, state: str, subject_ms: float, floor_ms: float) -> Figure:
    sync = model == "sync"
    idle = state == "idle"
    sleep = IDLE_SLEEP_SECONDS if idle else 0
    return Figure(
        "B3",
        f"stop latency, {model}, {state} (loop_sleep_seconds {sleep:g})",
        f"app-{model}" if idle else f"noop_{model}.py",
        "wake-up fd loop + prometheus server" if sync else "bare asyncio loop",
        "ms",
        subject_ms,
        floor_ms,
        budget=1.5 if sync else 2.0,
    )


def _idle_lives(tmp: Path, plan: Plan) -> dict[str, list[Life]]:
    env = service_env(tmp / "heartbeat.json", IDLE_SLEEP_SECONDS)
    sleep = str(IDLE_SLEEP_SECONDS)
    floors = {
        "floor": [PYTHON, PROM_FLOOR, sleep],
        "floor+asyncio": [PYTHON, PROM_FLOOR, sleep, "asyncio"],
        "asyncio floor": [PYTHON, str(LOOP_FLOOR["async"]), sleep],
    }
    runners: dict[str, Callable[[], Life]] = {"floor": _floor_runner(floors["floor"], env, tmp)}
    for model in MODELS:
        runners[model] = _service_runner([COMMAND[model]], env, tmp)
        for floor in (START_FLOOR[model], STOP_FLOOR[model]):
            if floor not in runners:
                runners[floor] = _floor_runner(floors[floor], env, tmp)
    return interleave(runners, plan.rounds, plan.warmup)


def _service_runner(argv: list[str], env: dict[str, str], cwd: Path) -> Callable[[], Life]:
    return lambda: _service_life(argv, env, cwd)


def _floor_runner(argv: list[str], env: dict[str, str], cwd: Path) -> Callable[[], Life]:
    return lambda: _floor_life(argv, env, cwd)


def _service_life(argv: list[str], env: dict[str, str], cwd: Path) -> Life:
    with running(argv, env, cwd) as proc:
        _, listening = proc.wait_event("metrics_listening")
        http_get(int(listening["port"]))
        metrics_at = time.perf_counter() - proc.started
        success_at, _ = proc.wait_event("startup_success")
        return Life(max(metrics_at, success_at), success_at, _stop_after_settling(proc))


def _floor_life(argv: list[str], env: dict[str, str], cwd: Path) -> Life:
    with running(argv, env, cwd) as proc:
        _, words = proc.wait_ready_line()
        if words:  # the prometheus floor: ready once /metrics answers
            http_get(int(words[0]))
        ready = time.perf_counter() - proc.started
        return Life(ready, None, _stop_after_settling(proc))


def _stop_after_settling(proc: Running) -> float:
    time.sleep(SETTLE_SECONDS)
    elapsed = proc.stop()
    if elapsed is None or proc.proc.returncode != 0:
        raise BenchError(f"{proc.argv[-1]}: no clean exit on SIGTERM ({proc.proc.returncode})")
    return elapsed


def _busy_stops(tmp: Path, plan: Plan, model: str) -> tuple[list[BusyStop], list[BusyStop]]:
    """SIGTERM at a random moment into a loop with no sleep: latency, and whether it was clean."""
    heartbeat = tmp / "busy-heartbeat.json"
    env = service_env(heartbeat, 0)
    floor = [PYTHON, str(LOOP_FLOOR[model]), "0"]
    delays = random.Random(4)  # the same moments in every run of the benchmark

    def subject() -> BusyStop:
        with running([PYTHON, str(NOOP[model])], env, tmp) as proc:
            proc.wait_event("startup_success")
            time.sleep(delays.uniform(0.005, 0.05))
            elapsed = proc.stop()
            clean = (
                elapsed is not None
                and proc.proc.returncode == 0
                and proc.events("shutting_down") == proc.events("shutdown_complete") == 1
                and not heartbeat.exists()
            )
            return BusyStop(elapsed, clean)

    def baseline() -> BusyStop:
        with running(floor, env, tmp) as proc:
            proc.wait_ready_line()
            time.sleep(delays.uniform(0.005, 0.05))
            elapsed = proc.stop()
            return BusyStop(elapsed, elapsed is not None and proc.proc.returncode == 0)

    runs = interleave({"subject": subject, "floor": baseline}, plan.busy_signals, 0)
    return runs["subject"], runs["floor"]
