"""What only `app-async` does, as a real process: cancelled iterations, unawaited tasks."""

from __future__ import annotations

import signal

from conftest import fault, wait_until
from test_e2e import Start, assert_clean_output, count


def test_hanging_async_iteration_is_cancelled_after_shutdown_timeout(start: Start) -> None:
    proc = start(fault("async", "hang"), APP_SHUTDOWN_TIMEOUT_SECONDS="0.5")
    wait_until(lambda: any(r.get("marker") == "iteration_begin" for r in proc.records))
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    timeout = proc.events("iteration_timeout")
    assert len(timeout) == 1
    assert timeout[0]["reason"] == "shutdown_timeout_seconds"
    assert proc.events("shutdown_complete")[0]["shutdown_duration_ms"] >= 500
    assert_clean_output(proc)


def test_async_iteration_over_time_is_cancelled_and_counted(start: Start) -> None:
    proc = start(fault("async", "hang"), APP_ITERATION_TIMEOUT_SECONDS="0.2")
    wait_until(lambda: count(proc, "iteration_timeout") >= 2)
    timeout = proc.events("iteration_timeout")[0]
    assert timeout["reason"] == "iteration_timeout_seconds"
    assert timeout["exception_type"] == "TimeoutError"
    assert proc.proc.poll() is None  # counted as a failure, the loop goes on
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_clean_output(proc)


def test_task_exception_nobody_awaited_is_logged_as_json(start: Start) -> None:
    proc = start(fault("async", "orphan_task"))
    record = proc.wait_for_event("unhandled_exception")
    assert record["exception_type"] == "KeyError"
    assert record["where"] == "asyncio"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_clean_output(proc)
