"""`AsyncService`: the asyncio loop. Subclass it and write your work in `run_iteration()`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress

from app.config import Config
from app.heartbeat import HeartbeatFile
from app.lifecycle import Lifecycle, Watchdog
from app.logging_setup import log_asyncio_exception
from app.metrics import Metrics


class AsyncService:
    """Awaits `run_iteration()` every `loop_sleep_seconds` until stopped.

    The coroutine twin of `app.service_sync.Service`. On a stop request the in-flight
    iteration gets `shutdown_timeout_seconds` to finish, then it is cancelled; with
    `iteration_timeout_seconds` an iteration over time is cancelled and counted as failed.
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        heartbeat: HeartbeatFile | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics(config, event_loop=True)
        self.lifecycle = Lifecycle(config, self.metrics, heartbeat)
        self._stop_event = asyncio.Event()  # binds to the running loop on first use
        self._task: asyncio.Task[int] | None = None  # the task running start()
        self._timer: asyncio.TimerHandle | None = None  # the in-flight iteration's deadline
        self._expired: str | None = None  # why the deadline cancelled the iteration
        self._loop_due: float | None = None  # monotonic time the lag probe should next run

    async def setup(self) -> None:
        """Open connections, load state. An exception here ends start-up (exit status 1)."""

    async def run_iteration(self) -> None:
        """One unit of work. An exception is logged, counted, and the loop goes on."""
        raise NotImplementedError("subclass AsyncService and override run_iteration()")

    async def teardown(self) -> None:
        """Release what setup() took. Runs once the loop has ended, however it ended."""

    def readiness_checks(self) -> Mapping[str, Callable[[], Awaitable[object]]]:
        """Dependency checks by name, e.g. `{"database": self.ping_database}` (coroutines).

        Asked once, after setup(). Each check runs as a task beside the loop every
        `readiness_check_interval_seconds`, cancelled after `readiness_check_timeout_seconds`;
        while one raises or returns False, /readyz answers 503 and `app-health --ready`
        fails. The loop runs on regardless. A check must not block the event loop.
        """
        return {}

    @property
    def stopping(self) -> bool:
        """True once a stop was requested: no new iteration will start."""
        return self.lifecycle.latch.requested

    def stop(self, reason: str = "stop") -> None:
        """Ask the loop to stop; safe from any thread and from the loop itself."""
        self.lifecycle.latch.request(reason)

    async def start(self, *, once: bool = False) -> int:
        """Run the whole life: setup, loop, teardown. Returns the exit status."""
        life = self.lifecycle
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(log_asyncio_exception)
        loop.add_reader(life.latch.reader, self._on_wake)
        self._task = asyncio.current_task()
        try:
            return await self._run(once)
        finally:
            loop.remove_reader(life.latch.reader)

    async def _run(self, once: bool) -> int:
        life = self.lifecycle
        try:
            life.starting()
            await self.setup()
            checks = self.readiness_checks()
        except Exception as exc:  # noqa: BLE001 - start-up failed: logged with stack, exit 1
            return life.startup_failed(exc)
        tasks = []
        for name, check in checks.items():
            life.checks.add(name)  # now, so /readyz says "not checked yet" until it has run
            tasks.append(asyncio.create_task(self._run_check(name, check), name=f"check-{name}"))
        life.started()
        self._loop_due = time.monotonic() + self._lag_interval  # before the first iteration
        tasks.append(asyncio.create_task(self._watch_loop_lag(), name="loop-lag"))
        timeout = self.config.iteration_timeout_seconds
        watchdog = (
            Watchdog(timeout, lambda: self._loop_due, "event_loop_blocked") if timeout else None
        )
        if watchdog:
            watchdog.start()
        once_failed = False
        try:
            while not self.stopping:
                once_failed = not await self._iterate()
                if once:
                    self.stop("once")
                await self._sleep(self.config.loop_sleep_seconds)
        finally:
            if watchdog:
                watchdog.stop()
            for task in tasks:
                task.cancel()
            life.begin_shutdown()
            teardown_error = await self._teardown()
        return life.finished(teardown_error, once_failed=once and once_failed)

    async def _iterate(self) -> bool:
        life = self.lifecycle
        started = life.iteration_started()
        if self.config.iteration_timeout_seconds:
            self._arm_deadline(self.config.iteration_timeout_seconds, "iteration_timeout_seconds")
        error: BaseException | None = None
        try:
            await self.run_iteration()
        except asyncio.CancelledError:
            if self._expired is None:
                raise  # cancelled from outside (the loop is closing): not a timeout
            error = TimeoutError(f"iteration cancelled after {self._expired}")
        except Exception as exc:  # noqa: BLE001 - one failed iteration must not end the loop
            error = exc
        finally:
            expired = self._disarm_deadline()
        if error is not None and expired:
            life.iteration_finished(started, error, event="iteration_timeout", reason=expired)
        else:
            life.iteration_finished(started, error)
        return error is None

    # A deadline is a timer that cancels the loop's task while an iteration runs. Unlike
    # asyncio.timeout() it costs nothing when unused, which is most iterations.
    def _arm_deadline(self, delay: float, reason: str) -> None:
        """Cancel the in-flight iteration in `delay` seconds, unless an earlier deadline stands."""
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            if self._timer.when() <= loop.time() + delay:
                return
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._expire, reason)

    def _expire(self, reason: str) -> None:
        self._timer = None
        if self.lifecycle.in_flight is not None and self._task is not None:
            self._expired = reason
            self._task.cancel()

    def _disarm_deadline(self) -> str | None:
        """Stop the timer; if it fired, undo its cancel request and say why it fired."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        expired, self._expired = self._expired, None
        if expired is not None and self._task is not None:
            self._task.uncancel()
        return expired

    def _on_wake(self) -> None:
        """In the loop: a stop was requested. Log it, end the wait, bound the iteration."""
        self.lifecycle.latch.drain()
        if not self.stopping or self.lifecycle.state.status != "running":
            return  # during setup the request waits: the loop will not start
        self.lifecycle.begin_shutdown()
        self._stop_event.set()
        if self.lifecycle.in_flight is not None:
            self._arm_deadline(self.config.shutdown_timeout_seconds, "shutdown_timeout_seconds")

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stop_event.is_set():
            await asyncio.sleep(0)  # let other tasks run even in a busy loop
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def _run_check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        results = self.lifecycle.checks
        while True:
            started = results.begin(name)
            try:
                result = await asyncio.wait_for(check(), results.timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - a failed check means "not ready"
                results.finish(name, started, None, exc)
            else:
                results.finish(name, started, result, None)
            await asyncio.sleep(self.config.readiness_check_interval_seconds)

    async def _watch_loop_lag(self) -> None:
        """Measure how late the loop runs a timer; the watchdog reads `_loop_due`."""
        interval = self._lag_interval
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + interval
            self._loop_due = time.monotonic() + interval
            await asyncio.sleep(interval)
            if self.metrics.loop_lag is not None:
                self.metrics.loop_lag.set(max(0.0, loop.time() - expected))

    @property
    def _lag_interval(self) -> float:
        limit = self.config.iteration_timeout_seconds
        return min(1.0, limit / 2) if limit else 1.0

    async def _teardown(self) -> Exception | None:
        try:
            await self.teardown()
        except Exception as exc:  # noqa: BLE001 - logged by finished(), exit status 1
            return exc
        return None
