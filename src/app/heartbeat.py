"""Loop bookkeeping, and the heartbeat file that reports it to `app-health`."""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Upper bounds (seconds) of the iteration duration histogram: pollers take milliseconds,
# batch jobs minutes.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(slots=True)
class LoopState:
    """What the loop has done so far: read by the heartbeat file, /metrics and /healthz.

    Plain attributes, updated once per iteration by `record()`: the loop pays no lock or
    metric call per iteration, and a scrape reads the values when it happens.
    """

    status: str = "starting"  # starting -> running -> stopping
    started_ts: float = field(default_factory=time.time)
    iterations: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_iteration_ts: float | None = None
    last_success_ts: float | None = None
    # Monotonic time of the last sign of progress (start, or an iteration's end): wall-clock
    # jumps must not make the service look hung or alive.
    last_progress: float = field(default_factory=time.monotonic)
    # Iterations per DURATION_BUCKETS bound (the last one is +Inf), and their total time.
    duration_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0

    def record(self, ok: bool, duration: float, now: float, progress: float) -> None:
        """Count one finished iteration that took `duration` seconds.

        `now` is its end in wall-clock seconds, `progress` the same in monotonic time.
        """
        self.iterations += 1
        self.last_iteration_ts = now
        self.last_progress = progress
        self.duration_counts[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        if ok:
            self.consecutive_failures = 0
            self.last_success_ts = now
        else:
            self.failures += 1
            self.consecutive_failures += 1


class HeartbeatFile:
    """Writes LoopState as JSON, atomically (temp file + rename). The loop decides when."""

    def __init__(self, path: Path, identity: Mapping[str, object], max_age_seconds: float) -> None:
        self.path = path
        self.identity = dict(identity)  # run_id, service, env, version, commit, config_hash
        self.max_age_seconds = max_age_seconds
        self.last_write = -float("inf")  # monotonic time of the last write

    def write(self, state: LoopState, checks: Sequence[Mapping[str, object]] = ()) -> None:
        """Write the file, with the readiness checks' results; raises OSError on failure."""
        now = time.monotonic()
        data = {
            **self.identity,
            "pid": os.getpid(),
            "status": state.status,
            "ts": time.time(),
            "started_ts": state.started_ts,
            "last_iteration_ts": state.last_iteration_ts,
            "last_success_ts": state.last_success_ts,
            "iterations": state.iterations,
            "failures": state.failures,
            "consecutive_failures": state.consecutive_failures,
            "max_age_seconds": self.max_age_seconds,
            "checks": list(checks),
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.last_write = now

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
