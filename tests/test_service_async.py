"""What only AsyncService does, in-process: deadlines that cancel an iteration."""

from __future__ import annotations

import asyncio
import logging

import pytest
from counting_async import Counting, run
from test_service import events, make_config

from app.lifecycle import EXIT_CRASH, EXIT_OK
from app.service_async import AsyncService


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def test_base_class_run_iteration_must_be_overridden() -> None:
    assert run(AsyncService(make_config()), once=True) == EXIT_CRASH


def test_async_iteration_over_time_is_cancelled_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Hanging(Counting):
        async def run_iteration(self) -> None:
            await super().run_iteration()
            if self.lifecycle.state.iterations == 0:
                await asyncio.sleep(3600)

    service = Hanging(make_config(iteration_timeout_seconds=0.05))
    assert run(service) == EXIT_OK
    timeouts = events(caplog, "iteration_timeout")
    assert [t.reason for t in timeouts] == ["iteration_timeout_seconds"]  # type: ignore[attr-defined]
    assert service.lifecycle.state.failures == 1


def test_async_stop_cancels_the_iteration_after_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Hanging(AsyncService):
        async def run_iteration(self) -> None:
            self.stop("test")
            await asyncio.sleep(3600)

    service = Hanging(make_config(shutdown_timeout_seconds=0.05))
    assert run(service) == EXIT_OK
    assert events(caplog, "iteration_timeout")[0].reason == "shutdown_timeout_seconds"  # type: ignore[attr-defined]


def test_async_stop_lets_a_short_iteration_finish() -> None:
    class Short(AsyncService):
        finished = False

        async def run_iteration(self) -> None:
            self.stop("test")
            await asyncio.sleep(0.05)
            self.finished = True

    service = Short(make_config(shutdown_timeout_seconds=5))
    assert run(service) == EXIT_OK
    assert service.finished
    assert service.lifecycle.state.failures == 0


def test_async_deadline_leaves_the_task_clean_for_later_timeouts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the watchdog cancels one iteration, the next one's own asyncio.timeout works."""

    class Hangs(AsyncService):
        async def run_iteration(self) -> None:
            n = self.lifecycle.state.iterations + 1
            if n == 1:
                await asyncio.sleep(3600)  # cancelled by iteration_timeout_seconds
            if n == 2:
                async with asyncio.timeout(0.01):  # the service's own timeout
                    await asyncio.sleep(3600)
            self.stop("done")

    service = Hangs(make_config(iteration_timeout_seconds=0.1))
    assert run(service) == EXIT_OK
    assert [r.event for r in caplog.records if hasattr(r, "event")][1:3] == [
        "iteration_timeout",
        "iteration_failed",  # the service's own TimeoutError, not the deadline's
    ]
    assert service.lifecycle.state.iterations == 3


def test_async_iteration_that_swallows_the_cancel_counts_as_finished() -> None:
    class Stubborn(AsyncService):
        async def run_iteration(self) -> None:
            self.stop("test")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(0.01)  # cleans up, then returns normally

    service = Stubborn(make_config(shutdown_timeout_seconds=0.05))
    assert run(service) == EXIT_OK
    assert service.lifecycle.state.failures == 0
    assert service.lifecycle.state.iterations == 1
