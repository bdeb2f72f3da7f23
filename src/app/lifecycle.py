"""What the sync and async loops share: stop requests, signals, watchdog, bookkeeping, events."""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import NoReturn

from app.config import Config
from app.heartbeat import HeartbeatFile, LoopState
from app.logging_setup import write_now
from app.metrics import Metrics
from app.readiness import ReadinessChecks

# Exit statuses, all in one place.
EXIT_OK = 0
EXIT_CRASH = 1  # crash, failure budget spent, --once failure, forced shutdown
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h

HANDLED_SIGNALS = (
    signal.SIGINT,  # Ctrl+C in a terminal
    signal.SIGTERM,  # docker stop, Kubernetes pod deletion, systemd stop
)
REASON_FAILURES = "max_consecutive_failures"
MIN_BEAT_INTERVAL_SECONDS = 0.25  # a loop with no sleep writes the heartbeat 4 times a second

log = logging.getLogger(__name__)


class StopLatch:
    """A stop request that ends any wait at once, whoever makes it.

    Signal handlers only set `reason` (they run between two bytecodes of the main thread
    and must not take a lock); the kernel writes the signal to the wake-up socket
    (`signal.set_wakeup_fd`) from whichever thread received it, and that ends the wait.
    Other threads call `request()`, which writes to the same socket.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.requested_at = 0.0  # monotonic time of the first request
        self.signals = 0  # signals received; the second one forces exit
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    @property
    def requested(self) -> bool:
        return self.reason is not None

    @property
    def wakeup_fd(self) -> int:
        return self._writer.fileno()

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.requested_at = time.monotonic()
            self.reason = reason
        with suppress(OSError):  # buffer full (a wake-up is already pending) or closed
            self._writer.send(b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds; return at once when a stop is (or was) requested."""
        if timeout > 0 and not self.requested:
            select.select([self.reader], [], [], timeout)
            self.drain()

    def drain(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except OSError:  # BlockingIOError: nothing (more) to read
            pass

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


@contextmanager
def capture_signals(latch: StopLatch) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into stop requests; a second signal exits at once with status 1.

    Restores the previous handlers and wake-up fd on the way out (as uvicorn's
    `capture_signals` does). Main thread only.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        latch.signals += 1
        if latch.signals > 1:
            force_exit(name)
        latch.request(name)

    previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
    old_fd = signal.set_wakeup_fd(latch.wakeup_fd, warn_on_full_buffer=False)
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(old_fd)


@contextmanager
def blocked_signals() -> Iterator[None]:
    """Threads started inside inherit a mask that blocks our signals.

    The kernel then delivers SIGTERM to the main thread, whose blocking calls it interrupts,
    so a second signal can force exit even while an iteration is stuck.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def force_exit(signame: str) -> NoReturn:
    write_now(
        logging.ERROR,
        "second signal during shutdown: exiting now",
        event="shutdown_forced",
        reason=signame,
        exit_status=EXIT_CRASH,
    )
    os._exit(EXIT_CRASH)


class Watchdog:
    """Ends the process when work has been stuck longer than `timeout` seconds.

    `probe()` returns the monotonic time the current work started (or was due), or None when
    idle. A blocking call cannot be interrupted safely, so the watchdog logs `crashed` with
    the main thread's stack and exits with status 1 for the restart policy to act.
    """

    def __init__(self, timeout: float, probe: Callable[[], float | None], reason: str) -> None:
        self.timeout, self.probe, self.reason = timeout, probe, reason
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        with blocked_signals():
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(min(1.0, self.timeout / 4)):
            started = self.probe()
            if started is not None and time.monotonic() - started > self.timeout:
                self._fire(time.monotonic() - started)

    def _fire(self, stuck_seconds: float) -> NoReturn:
        frame = sys._current_frames().get(threading.main_thread().ident or 0)
        stack = "".join(traceback.format_stack(frame)).rstrip() if frame else ""
        write_now(
            logging.CRITICAL,
            "work stuck longer than iteration_timeout_seconds: exiting",
            event="crashed",
            reason=self.reason,
            stuck_seconds=round(stuck_seconds, 3),
            iteration_timeout_seconds=self.timeout,
            stack=stack,
            exit_status=EXIT_CRASH,
        )
        os._exit(EXIT_CRASH)


class Lifecycle:
    """Bookkeeping and lifecycle events shared by Service and AsyncService.

    The loops call: starting() -> started() -> iteration_started()/iteration_finished()
    ... -> begin_shutdown() -> finished(). /healthz and /readyz read health()/readiness().
    """

    def __init__(self, config: Config, metrics: Metrics, heartbeat: HeartbeatFile | None) -> None:
        self.config, self.metrics, self.heartbeat = config, metrics, heartbeat
        self.state = LoopState()
        self.latch = StopLatch()
        self.in_flight: float | None = None  # monotonic start of the running iteration
        self._heartbeat_ok = True
        # Throttle only a fast loop: before a longer wait the file must show the last iteration.
        self._throttle_beats = config.loop_sleep_seconds < MIN_BEAT_INTERVAL_SECONDS
        # Results of the service's readiness checks: filled by CheckThreads or async tasks.
        self.checks = ReadinessChecks(config.readiness_check_timeout_seconds)
        metrics.track(self.state, self._is_up, self.checks)

    def starting(self) -> None:
        """Write the `starting` heartbeat; raises OSError if the file cannot be written."""
        if self.heartbeat is not None:
            self.heartbeat.write(self.state)

    def startup_failed(self, exc: BaseException) -> int:
        log.error(
            "startup failed",
            exc_info=exc,
            extra={"event": "startup_failed", "exit_status": EXIT_CRASH},
        )
        if self.heartbeat is not None:
            self.heartbeat.remove()
        return EXIT_CRASH

    def started(self) -> None:
        self.state.status = "running"
        self.state.last_progress = time.monotonic()
        self._beat()
        log.info("service started", extra={"event": "startup_success"})

    def iteration_started(self) -> float:
        self.in_flight = time.monotonic()
        return self.in_flight

    def iteration_finished(
        self,
        started: float,
        error: BaseException | None,
        *,
        event: str = "iteration_failed",
        reason: str | None = None,
    ) -> None:
        """Record one iteration; log a failure with its stack; spend the failure budget."""
        end = time.monotonic()
        self.in_flight = None
        self.state.record(error is None, end - started, time.time(), end)
        if error is not None:
            log.error(
                "iteration failed",
                exc_info=error,
                extra={
                    "event": event,
                    "reason": reason or type(error).__name__,
                    "consecutive_failures": self.state.consecutive_failures,
                },
            )
            budget = self.config.max_consecutive_failures
            if budget and self.state.consecutive_failures >= budget:
                self.latch.request(REASON_FAILURES)
        beat = self.heartbeat
        if beat is not None and (
            not self._throttle_beats or end - beat.last_write >= MIN_BEAT_INTERVAL_SECONDS
        ):
            self._beat()

    def begin_shutdown(self) -> None:
        """Log `shutting_down` once, the first time the loop sees the stop request."""
        if self.state.status == "stopping":
            return
        self.latch.request("stop")  # no-op if a reason is set; marks a loop that ended by itself
        self.state.status = "stopping"
        log.info("shutting down", extra={"event": "shutting_down", "reason": self.latch.reason})
        self._beat()

    def finished(self, teardown_error: BaseException | None, *, once_failed: bool = False) -> int:
        """After teardown: remove the heartbeat, log `shutdown_complete`, return the status."""
        failed = teardown_error is not None or once_failed or self.latch.reason == REASON_FAILURES
        status = EXIT_CRASH if failed else EXIT_OK
        if teardown_error is not None:
            log.critical(
                "teardown failed",
                exc_info=teardown_error,
                extra={"event": "crashed", "reason": "teardown_failed"},
            )
        if self.heartbeat is not None:
            self.heartbeat.remove()
        log.info(
            "shutdown complete",
            extra={
                "event": "shutdown_complete",
                "reason": self.latch.reason,
                "exit_status": status,
                # From the stop request (a signal, say) to now, in-flight iteration included.
                "shutdown_duration_ms": round(
                    (time.monotonic() - self.latch.requested_at) * 1000, 1
                ),
                "iterations": self.state.iterations,
                "failures": self.state.failures,
            },
        )
        return status

    def health(self) -> tuple[bool, dict[str, object]]:
        """Liveness: the loop made progress within health_max_age_seconds."""
        age = time.monotonic() - self.state.last_progress
        limit = self.config.health_max_age_seconds
        ok = age <= limit
        body: dict[str, object] = {"status": "ok" if ok else "stale", "age_seconds": round(age, 3)}
        return ok, {**body, "max_age_seconds": limit, "iterations": self.state.iterations}

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Readiness: after startup_success, until a stop is requested, while checks pass."""
        if self.latch.requested:
            return False, {"status": "stopping", "reason": self.latch.reason}
        if self.state.status != "running":
            return False, {"status": self.state.status}
        if not self.checks.names:
            return True, {"status": "ready"}
        report = self.checks.report()
        ok = all(entry["status"] == "ok" for entry in report)
        return ok, {"status": "ready" if ok else "not_ready", "checks": report}

    def _is_up(self) -> bool:
        """app_up: running and no stop requested; a failing readiness check is not down."""
        return self.state.status == "running" and not self.latch.requested

    def _beat(self) -> None:
        """Write the heartbeat; a failure is logged once (not per iteration) and retried."""
        if self.heartbeat is None:
            return
        try:
            self.heartbeat.write(self.state, self.checks.report())
        except OSError as exc:
            if self._heartbeat_ok:
                log.error(
                    "cannot write heartbeat file",
                    exc_info=exc,
                    extra={"event": "heartbeat_failed", "path": str(self.heartbeat.path)},
                )
            self._heartbeat_ok = False
        else:
            self._heartbeat_ok = True
