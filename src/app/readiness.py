"""Readiness checks of dependencies: their latest results, and the threads that run sync ones.

A check is a callable that raises (or returns False) when its dependency is not usable, e.g.
`lambda: db.execute("SELECT 1")`. Checks run every `readiness_check_interval_seconds`, off
the loop: blocking ones in a thread each (`CheckThreads`), coroutines as tasks beside the
async loop. Their results drive `/readyz`, the heartbeat's `checks` and `app-health --ready`;
a failing check makes the service unready, never stops its loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from app.config import Config

log = logging.getLogger(__name__)


class CheckResult:
    """One run of a check. A plain class: defining a dataclass costs 0.6 ms of start-up."""

    __slots__ = ("error", "latency_seconds", "ok")

    def __init__(self, ok: bool, latency_seconds: float, error: str | None) -> None:
        self.ok, self.latency_seconds, self.error = ok, latency_seconds, error  # error: why


class ReadinessChecks:
    """The latest result of each check, written by whatever runs them, read by probes.

    One result is replaced as a whole (an attribute assignment), so readers in other
    threads never see half of one.
    """

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._results: dict[str, CheckResult | None] = {}
        self._running_since: dict[str, float | None] = {}  # monotonic start of a running check

    def add(self, name: str) -> None:
        self._results[name] = None
        self._running_since[name] = None

    @property
    def names(self) -> list[str]:
        return list(self._results)

    def begin(self, name: str) -> float:
        self._running_since[name] = started = time.monotonic()
        return started

    def finish(
        self, name: str, started: float, result: object, error: BaseException | None
    ) -> None:
        """Record one run that began at `started`; log when the check starts or stops failing."""
        latency = time.monotonic() - started
        reason = None
        if isinstance(error, TimeoutError) and not str(error):  # from wait_for(), say
            reason = f"TimeoutError: no answer within {self.timeout_seconds:g}s"
        elif error is not None:
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
        elif result is False:
            reason = "the check returned False"
        elif hasattr(result, "__await__"):  # an `async def` check on a blocking Service
            reason = "the check returned an awaitable: a Service's checks are plain functions"
        elif latency > self.timeout_seconds:
            reason = f"took {latency:.1f}s, limit {self.timeout_seconds:g}s"
        previous = self._results[name]
        self._results[name] = CheckResult(reason is None, latency, reason)
        self._running_since[name] = None
        if reason is not None and (previous is None or previous.ok):
            log.warning(
                "readiness check failed",
                extra={"event": "readiness_check_failed", "check": name, "error": reason},
            )
        elif reason is None and previous is not None and not previous.ok:
            log.info(
                "readiness check passed again",
                extra={"event": "readiness_check_recovered", "check": name},
            )

    def report(self) -> list[dict[str, object]]:
        """Each check as `{name, status, latency_ms[, reason]}`; a hung one counts as failed."""
        now = time.monotonic()
        entries: list[dict[str, object]] = []
        for name, result in self._results.items():
            since = self._running_since[name]
            running = 0.0 if since is None else now - since
            entry: dict[str, object] = {"name": name, "status": "fail"}
            if running > self.timeout_seconds:
                entry["latency_ms"] = round(running * 1000, 3)
                entry["reason"] = f"no answer after {running:.1f}s, limit {self.timeout_seconds:g}s"
            elif result is None:
                entry["latency_ms"] = round(running * 1000, 3)
                entry["reason"] = "not checked yet"
            else:
                entry["status"] = "ok" if result.ok else "fail"
                entry["latency_ms"] = round(result.latency_seconds * 1000, 3)
                if result.error is not None:
                    entry["reason"] = result.error
            entries.append(entry)
        return entries


class CheckThreads:
    """Runs each blocking check in a daemon thread of its own, every `interval` seconds.

    A thread each, so one hung dependency cannot delay the others' results; daemon threads,
    so a check that never returns cannot hold up the end of the process.
    """

    def __init__(
        self, results: ReadinessChecks, checks: Mapping[str, Callable[[], object]], config: Config
    ) -> None:
        self.results, self.checks = results, dict(checks)
        self.interval = config.readiness_check_interval_seconds
        self._stop = threading.Event()  # set by stop() from the main thread, never a handler
        self._recording = threading.Lock()  # held while a result is recorded (and logged)
        for name in self.checks:
            results.add(name)

    def start(self) -> None:
        for name, check in self.checks.items():
            thread = threading.Thread(
                target=self._run, args=(name, check), name=f"check-{name}", daemon=True
            )
            thread.start()

    def stop(self) -> None:
        """Once this returns no result is recorded or logged: `shutdown_complete` stays last."""
        with self._recording:
            self._stop.set()

    def _run(self, name: str, check: Callable[[], object]) -> None:
        while not self._stop.is_set():
            started = self.results.begin(name)
            result: object = None
            error: Exception | None = None
            try:
                result = check()
            except Exception as exc:  # noqa: BLE001 - a failed check means "not ready"
                error = exc
            close = getattr(result, "close", None)
            if hasattr(result, "__await__") and callable(close):
                close()  # a coroutine never awaited: no RuntimeWarning per run
            with self._recording:
                if self._stop.is_set():
                    return
                self.results.finish(name, started, result, error)
            self._stop.wait(self.interval)
