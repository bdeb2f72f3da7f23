"""Loop bookkeeping, and the heartbeat file that reports it to `app-health`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopState:
    """What the loop has done so far: read by the heartbeat file, /healthz and /readyz."""

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

    def record(self, ok: bool, now: float) -> None:
        """Count one finished iteration; `now` is its end in wall-clock seconds."""
        self.iterations += 1
        self.last_iteration_ts = now
        self.last_progress = time.monotonic()
        if ok:
            self.consecutive_failures = 0
            self.last_success_ts = now
        else:
            self.failures += 1
            self.consecutive_failures += 1


class HeartbeatFile:
    """Writes LoopState as JSON, atomically (temp file + rename), at most every `min_interval`."""

    def __init__(
        self,
        path: Path,
        identity: Mapping[str, object],
        max_age_seconds: float,
        min_interval_seconds: float = 0.25,
    ) -> None:
        self.path = path
        self.identity = dict(identity)  # run_id, service, env, version, commit, config_hash
        self.max_age_seconds = max_age_seconds
        self.min_interval_seconds = min_interval_seconds
        self._last_write = -float("inf")

    def write(self, state: LoopState, *, force: bool = False) -> bool:
        """Write the file unless one was written less than `min_interval` ago (or `force`).

        Returns whether it wrote; raises OSError when the file cannot be written.
        """
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_seconds:
            return False
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
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self._last_write = now
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
