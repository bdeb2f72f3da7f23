"""SIGTERM or SIGINT at a random moment (setup, iteration, sleep, teardown), 50 times a model.

Every run must end as SPEC §6 says: exit 0, `shutting_down` and `shutdown_complete` once each
and in order, the heartbeat removed, stderr empty, every stdout line JSON, and the last line
`shutdown_complete` (nothing lost at exit). Set SHUTDOWN_SEED to replay a run of plans.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MODELS, Running, fault, wait_until

RUNS_PER_MODEL = 50
PARALLEL = 4  # processes at once: most of a run is waiting, so 4 fit on 2 cores
PHASES = ("setup", "iteration", "sleep", "teardown")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Plan:
    """One run: how long each phase lasts, and when which signal comes."""

    phase: str  # the phase the signal is aimed at
    sig: signal.Signals
    setup_seconds: float
    iteration_seconds: float
    sleep_seconds: float
    teardown_seconds: float
    count: int  # the iteration whose begin (or end, for "sleep") starts the clock
    delay_seconds: float  # from the phase's marker to the signal

    @property
    def stops_itself(self) -> bool:
        """Aimed at teardown: the service stops by itself, the signal lands in teardown."""
        return self.phase == "teardown"

    def env(self) -> dict[str, str]:
        env = {
            "FAULT_SETUP_SECONDS": f"{self.setup_seconds:.3f}",
            "FAULT_ITERATION_SECONDS": f"{self.iteration_seconds:.3f}",
            "FAULT_TEARDOWN_SECONDS": f"{self.teardown_seconds:.3f}",
            "APP_LOOP_SLEEP_SECONDS": f"{self.sleep_seconds:.3f}",
        }
        if self.stops_itself:
            env["FAULT_STOP_AFTER"] = str(self.count)
        return env

    def marker(self) -> tuple[str, int | None]:
        """The stdout marker after which the signal's delay starts."""
        return {
            "setup": ("setup_begin", None),
            "iteration": ("iteration_begin", self.count),
            "sleep": ("iteration_end", self.count),
            "teardown": ("teardown_begin", None),
        }[self.phase]


def make_plans(rng: random.Random, runs: int) -> list[Plan]:
    """`runs` plans, the four phases in turn, everything else drawn at random."""
    plans = []
    for index in range(runs):
        phase = PHASES[index % len(PHASES)]
        durations = {
            "setup": rng.uniform(0.1, 0.4),
            "iteration": rng.uniform(0.05, 0.25),
            "sleep": rng.uniform(0.05, 0.25),
            # Aimed at teardown: long enough that the signal cannot miss it and land after
            # exit, when the default handlers are back (outside the contract).
            "teardown": rng.uniform(0.8, 1.2) if phase == "teardown" else rng.uniform(0, 0.1),
        }
        window = durations[phase] * (0.3 if phase == "teardown" else 1.0)
        plans.append(
            Plan(
                phase=phase,
                sig=rng.choice([signal.SIGTERM, signal.SIGINT]),
                setup_seconds=durations["setup"],
                iteration_seconds=durations["iteration"],
                sleep_seconds=durations["sleep"],
                teardown_seconds=durations["teardown"],
                count=rng.randint(1, 3),
                delay_seconds=rng.uniform(0, window),
            )
        )
    return plans


def has_marker(proc: Running, name: str, count: int | None) -> bool:
    return any(
        r.get("marker") == name and (count is None or r.get("count") == count) for r in proc.records
    )


def run_once(model: str, plan: Plan, workdir: Path, base_env: dict[str, str]) -> list[str]:
    """Run one service, signal it as planned; return what went wrong (empty: a clean run)."""
    workdir.mkdir()
    heartbeat = workdir / "heartbeat.json"
    env = {**base_env, **plan.env(), "APP_HEARTBEAT_FILE": str(heartbeat)}
    proc = Running(fault(model, "phases"), env, workdir)
    try:
        marker, count = plan.marker()
        wait_until(lambda: has_marker(proc, marker, count) or proc.proc.poll() is not None, 20)
        time.sleep(plan.delay_seconds)  # the random moment itself, not a synchronisation
        proc.proc.send_signal(plan.sig)
        status = proc.wait(timeout=20)
    finally:
        proc.kill()
    return check_run(proc, status, plan, workdir)


def check_run(proc: Running, status: int, plan: Plan, workdir: Path) -> list[str]:
    problems = []
    if status != 0:
        problems.append(f"exit status {status}")
    if proc.stderr:
        problems.append(f"stderr: {proc.stderr[-500:]!r}")
    records = []
    for line in proc.lines:
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"not JSON: {line!r}")
            continue
        if not isinstance(record, dict):
            problems.append(f"not a JSON object: {line!r}")
            continue
        records.append(record)
    events = [r["event"] for r in records if "event" in r]
    for event in ("startup_success", "shutting_down", "shutdown_complete"):
        if events.count(event) != 1:
            problems.append(f"{event} logged {events.count(event)} times")
    if not problems and not (
        events.index("startup_success")
        < events.index("shutting_down")
        < events.index("shutdown_complete")
    ):
        problems.append(f"events out of order: {events}")
    if records and records[-1].get("event") != "shutdown_complete":
        problems.append(f"last line is not shutdown_complete: {records[-1]}")
    errors = [r for r in records if r.get("level") == "error" or "stack" in r]
    if errors:
        problems.append(f"error records: {errors}")
    expected = "done" if plan.stops_itself else plan.sig.name
    for record in records:
        name, reason = record.get("event"), record.get("reason")
        if name in ("shutting_down", "shutdown_complete") and reason != expected:
            problems.append(f"{name} reason {reason!r}, not {expected}")
    if sum(r.get("marker") == "teardown_begin" for r in records) != 1:
        problems.append("teardown did not run exactly once")
    leftovers = sorted(p.name for p in workdir.iterdir())
    if leftovers:
        problems.append(f"files left behind (heartbeat or its temp file): {leftovers}")
    return problems


@pytest.mark.parametrize("model", MODELS)
def test_signal_at_a_random_moment_always_shuts_down_cleanly(
    model: str, tmp_path: Path, service_env: dict[str, str]
) -> None:
    seed = int(os.environ.get("SHUTDOWN_SEED") or random.SystemRandom().randrange(2**32))
    plans = make_plans(random.Random(seed), RUNS_PER_MODEL)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(
            pool.map(
                lambda job: run_once(model, job[1], tmp_path / f"run-{job[0]}", service_env),
                enumerate(plans),
            )
        )
    passed = Counter(
        plan.phase for plan, problems in zip(plans, results, strict=True) if not problems
    )
    print(
        f"\n{model}: {sum(passed.values())}/{len(plans)} runs shut down cleanly "
        f"({', '.join(f'{phase} {passed[phase]}' for phase in PHASES)}; "
        f"SHUTDOWN_SEED={seed}, {time.monotonic() - started:.1f} s)"
    )
    failures = [
        f"run {index} ({plan}): {problems}"
        for index, (plan, problems) in enumerate(zip(plans, results, strict=True))
        if problems
    ]
    assert not failures, "\n".join(failures)
