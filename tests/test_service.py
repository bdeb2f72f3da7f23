"""Service and AsyncService in-process: the loop, its bookkeeping, metrics and heartbeat.

The loop tests run for each model this copy has (conftest.MODELS); what only one model
does is in test_service_sync.py and test_service_async.py.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import MODELS

from app.config import Config
from app.heartbeat import HeartbeatFile, LoopState
from app.lifecycle import EXIT_CRASH, EXIT_OK, Lifecycle, StopLatch, capture_signals
from app.metrics import Metrics


def make_config(**overrides: Any) -> Config:
    values: dict[str, Any] = {"loop_sleep_seconds": 0.0, "metrics_enabled": False}
    return Config(**(values | overrides))


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest) -> ModuleType:
    """The model's half of these tests, counting_sync.py or counting_async.py: `Counting`,
    a service that stops itself after `limit` iterations and fails those in `failing`, and
    `run(service, once=False)`, which runs it in this process and returns the exit status."""
    return importlib.import_module(f"counting_{request.param}")


def test_start_runs_setup_loop_teardown_in_order(
    model: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    service = model.Counting(make_config())
    assert model.run(service) == EXIT_OK
    assert service.calls == ["setup", "iteration 1", "iteration 2", "iteration 3", "teardown"]
    names = [r.event for r in caplog.records if hasattr(r, "event")]
    assert names == ["startup_success", "shutting_down", "shutdown_complete"]
    assert events(caplog, "shutting_down")[0].reason == "done"  # type: ignore[attr-defined]


def test_iterations_update_metrics(model: ModuleType) -> None:
    service = model.Counting(make_config())
    service.failing = (2,)
    assert model.run(service) == EXIT_OK
    sample = service.metrics.registry.get_sample_value
    assert sample("app_iterations_total") == 3
    assert sample("app_iteration_failures_total") == 1
    assert sample("app_iteration_duration_seconds_count") == 3
    assert sample("app_last_success_timestamp_seconds") == service.lifecycle.state.last_success_ts
    assert sample("app_up") == 0  # shutdown has begun


def test_failed_iteration_is_logged_with_stack_and_loop_goes_on(
    model: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    service = model.Counting(make_config())
    service.failing = (1, 2)
    assert model.run(service) == EXIT_OK
    failed = events(caplog, "iteration_failed")
    assert len(failed) == 2
    assert failed[0].exc_info is not None
    assert [f.consecutive_failures for f in failed] == [1, 2]  # type: ignore[attr-defined]
    assert service.lifecycle.state.consecutive_failures == 0  # iteration 3 succeeded


def test_failure_budget_stops_with_status_1(
    model: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    service = model.Counting(make_config(max_consecutive_failures=2))
    service.limit, service.failing = 10, (1, 2, 3)
    assert model.run(service) == EXIT_CRASH
    assert service.calls[-2:] == ["iteration 2", "teardown"]
    reason = events(caplog, "shutting_down")[0].reason  # type: ignore[attr-defined]
    assert reason == "max_consecutive_failures"


@pytest.mark.parametrize(("failing", "status"), [((), EXIT_OK), ((1,), EXIT_CRASH)])
def test_once_runs_exactly_one_iteration(
    model: ModuleType, failing: tuple[int, ...], status: int
) -> None:
    service = model.Counting(make_config(loop_sleep_seconds=600))
    service.limit, service.failing = 10, failing
    assert model.run(service, once=True) == status
    assert service.calls == ["setup", "iteration 1", "teardown"]


def test_setup_failure_skips_loop_and_teardown(
    model: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    service = model.Counting(make_config())

    def broken(*args: object) -> None:
        raise OSError("database unreachable")

    service.setup = broken
    assert model.run(service) == EXIT_CRASH
    assert service.calls == []
    failed = events(caplog, "startup_failed")
    assert len(failed) == 1
    assert failed[0].exc_info is not None


def test_teardown_failure_is_status_1(model: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    service = model.Counting(make_config())
    service.teardown_error = RuntimeError("close failed")
    assert model.run(service) == EXIT_CRASH
    assert events(caplog, "crashed")[0].reason == "teardown_failed"  # type: ignore[attr-defined]
    assert events(caplog, "shutdown_complete")[0].exit_status == 1  # type: ignore[attr-defined]


def test_heartbeat_reports_progress_and_is_removed(model: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "beat.json"
    beat = HeartbeatFile(path, {"run_id": "r1", "service": "s"}, 30.0)
    seen: list[dict[str, Any]] = []
    service = model.Counting(make_config(loop_sleep_seconds=0.3), heartbeat=beat)
    original = service.run_iteration

    def spy() -> Any:
        seen.append(json.loads(path.read_text()))
        return original()

    service.run_iteration = spy
    assert model.run(service) == EXIT_OK
    assert [s["status"] for s in seen] == ["running"] * 3
    assert [s["iterations"] for s in seen] == [0, 1, 2]  # written before each wait
    assert seen[0]["run_id"] == "r1"
    assert seen[0]["pid"] == os.getpid()
    assert not path.exists()


def test_stop_from_another_thread_ends_a_long_wait(model: ModuleType) -> None:
    service = model.Counting(make_config(loop_sleep_seconds=600))
    service.limit = 10
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(model.run(service)))
    worker.start()
    while service.lifecycle.state.iterations == 0 and worker.is_alive():
        worker.join(0.01)
    service.stop()
    worker.join(timeout=10)
    assert not worker.is_alive(), "a 600 s wait ignored stop()"
    assert result == [EXIT_OK]


def test_health_is_stale_when_no_progress_within_max_age() -> None:
    life = Lifecycle(make_config(health_max_age_seconds=5), Metrics(Config()), None)
    assert life.health()[0]
    life.state.last_progress -= 6
    ok, body = life.health()
    life.latch.close()
    assert not ok
    assert body["status"] == "stale"


def test_readiness_follows_the_lifecycle() -> None:
    life = Lifecycle(make_config(), Metrics(Config()), None)
    assert life.readiness() == (False, {"status": "starting"})
    life.started()
    assert life.readiness() == (True, {"status": "ready"})
    assert life.metrics.registry.get_sample_value("app_up") == 1
    life.latch.request("SIGTERM")
    assert life.readiness() == (False, {"status": "stopping", "reason": "SIGTERM"})
    assert life.metrics.registry.get_sample_value("app_up") == 0
    life.latch.close()


def test_heartbeat_write_failure_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    beat = HeartbeatFile(tmp_path / "missing-dir" / "beat.json", {}, 30.0)
    life = Lifecycle(make_config(loop_sleep_seconds=1), Metrics(Config()), beat)
    for _ in range(3):
        life.iteration_finished(life.iteration_started(), None)
    assert len(events(caplog, "heartbeat_failed")) == 1
    (tmp_path / "missing-dir").mkdir()
    life.iteration_finished(life.iteration_started(), None)
    life.latch.close()
    assert json.loads(beat.path.read_text())["iterations"] == 4


def test_heartbeat_writes_are_throttled_in_a_busy_loop(tmp_path: Path) -> None:
    beat = HeartbeatFile(tmp_path / "beat.json", {}, 30.0)
    life = Lifecycle(make_config(loop_sleep_seconds=0.0), Metrics(Config()), beat)
    life.started()
    for _ in range(5):
        life.iteration_finished(life.iteration_started(), None)
    assert json.loads(beat.path.read_text())["iterations"] == 0  # written at start only
    beat.last_write -= 1  # as if a second had passed
    life.iteration_finished(life.iteration_started(), None)
    life.latch.close()
    assert json.loads(beat.path.read_text())["iterations"] == 6


def test_heartbeat_write_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    beat = HeartbeatFile(tmp_path / "beat.json", {"service": "s"}, 12.5)
    beat.write(LoopState())
    assert [p.name for p in tmp_path.iterdir()] == ["beat.json"]
    data = json.loads(beat.path.read_text())
    assert data["max_age_seconds"] == 12.5
    assert data["status"] == "starting"


def test_stop_latch_wait_returns_when_requested_from_a_thread() -> None:
    latch = StopLatch()
    threading.Timer(0.05, latch.request, args=("test",)).start()
    latch.wait(600)  # the test would hang here if the request did not wake it
    assert latch.reason == "test"
    latch.wait(600)  # an earlier request ends every later wait at once
    latch.close()


def test_capture_signals_turns_sigterm_into_a_stop_and_restores_handlers() -> None:
    latch = StopLatch()
    before = signal.getsignal(signal.SIGTERM)
    with capture_signals(latch):
        os.kill(os.getpid(), signal.SIGTERM)
        latch.wait(600)
        assert latch.reason == "SIGTERM"
        assert latch.signals == 1
    assert signal.getsignal(signal.SIGTERM) is before
    latch.close()
