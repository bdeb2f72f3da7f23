"""`Service`: the blocking loop. Subclass it and write your work in `run_iteration()`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from app.config import Config
from app.heartbeat import HeartbeatFile
from app.lifecycle import Lifecycle, Watchdog, blocked_signals
from app.metrics import Metrics
from app.readiness import CheckThreads


class Service:
    """Runs `run_iteration()` every `loop_sleep_seconds` until stopped.

    Override `setup()`, `run_iteration()` and `teardown()`. A long iteration can check
    `self.stopping` and return early. Metrics and heartbeat are optional so tests can build
    a bare `Service(config)`; the entry point (`app.main_sync.run`) passes real ones.
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        heartbeat: HeartbeatFile | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics(config)
        self.lifecycle = Lifecycle(config, self.metrics, heartbeat)

    def setup(self) -> None:
        """Open connections, load state. An exception here ends start-up (exit status 1)."""

    def run_iteration(self) -> None:
        """One unit of work. An exception is logged, counted, and the loop goes on."""
        raise NotImplementedError("subclass Service and override run_iteration()")

    def teardown(self) -> None:
        """Release what setup() took. Runs once the loop has ended, however it ended."""

    def readiness_checks(self) -> Mapping[str, Callable[[], object]]:
        """Dependency checks by name, e.g. `{"database": lambda: self.db.execute("SELECT 1")}`.

        Asked once, after setup(). Each check runs in a thread of its own every
        `readiness_check_interval_seconds`; while one raises or returns False, /readyz
        answers 503 and `app-health --ready` fails. The loop runs on regardless.
        """
        return {}

    @property
    def stopping(self) -> bool:
        """True once a stop was requested: no new iteration will start."""
        return self.lifecycle.latch.requested

    def stop(self, reason: str = "stop") -> None:
        """Ask the loop to stop; safe from any thread. The current iteration may finish."""
        self.lifecycle.latch.request(reason)

    def start(self, *, once: bool = False) -> int:
        """Run the whole life: setup, loop, teardown. Returns the exit status."""
        life = self.lifecycle
        try:
            life.starting()
            self.setup()
            checks = CheckThreads(life.checks, self.readiness_checks(), self.config)
        except Exception as exc:  # noqa: BLE001 - start-up failed: logged with stack, exit 1
            return life.startup_failed(exc)
        with blocked_signals():  # signals go to the main thread, which handles them
            checks.start()
        life.started()
        timeout = self.config.iteration_timeout_seconds
        watchdog = Watchdog(timeout, lambda: life.in_flight, "iteration_stuck") if timeout else None
        if watchdog:
            watchdog.start()
        once_failed = False
        latch, sleep = life.latch, self.config.loop_sleep_seconds
        try:
            while latch.reason is None:  # not self.stopping, without two property calls
                once_failed = not self._iterate()
                if once:
                    self.stop("once")
                latch.wait(sleep)
        finally:
            if watchdog:
                watchdog.stop()
            checks.stop()
            life.begin_shutdown()
            teardown_error = self._teardown()
        return life.finished(teardown_error, once_failed=once and once_failed)

    def _iterate(self) -> bool:
        started = self.lifecycle.iteration_started()
        try:
            self.run_iteration()
        except Exception as exc:  # noqa: BLE001 - one failed iteration must not end the loop
            self.lifecycle.iteration_finished(started, exc)
            return False
        self.lifecycle.iteration_finished(started, None)
        return True

    def _teardown(self) -> Exception | None:
        try:
            self.teardown()
        except Exception as exc:  # noqa: BLE001 - logged by finished(), exit status 1
            return exc
        return None
