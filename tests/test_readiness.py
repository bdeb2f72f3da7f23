"""Readiness checks: results, /readyz, heartbeat, app-health --ready and the loop going on."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import MODELS, Running, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_health import run_script

from app.config import Config
from app.heartbeat import HeartbeatFile
from app.lifecycle import Lifecycle
from app.metrics import Metrics
from app.readiness import CheckThreads, ReadinessChecks

HERE = Path(__file__).parent
CHECK_ENV = {
    "APP_READINESS_CHECK_INTERVAL_SECONDS": "0.05",
    "APP_READINESS_CHECK_TIMEOUT_SECONDS": "0.5",
}


def finished(checks: ReadinessChecks, name: str, result: object, error: Exception | None) -> None:
    checks.finish(name, checks.begin(name), result, error)


# --- Results -----------------------------------------------------------------------------


def test_a_check_that_has_not_run_is_not_ready() -> None:
    checks = ReadinessChecks(timeout_seconds=5)
    checks.add("db")
    assert checks.report() == [
        {"name": "db", "status": "fail", "latency_ms": 0.0, "reason": "not checked yet"}
    ]


@pytest.mark.parametrize(
    ("result", "error", "reason"),
    [
        (None, None, None),
        (True, None, None),
        ("anything but False", None, None),
        (False, None, "the check returned False"),
        (
            None,
            ConnectionRefusedError("port 5432 refused"),
            "ConnectionRefusedError: port 5432 refused",
        ),
        (None, RuntimeError(), "RuntimeError"),
        (None, TimeoutError(), "TimeoutError: no answer within 5s"),
    ],
)
def test_outcome_of_one_run(result: object, error: Exception | None, reason: str | None) -> None:
    checks = ReadinessChecks(timeout_seconds=5)
    checks.add("db")
    finished(checks, "db", result, error)
    [entry] = checks.report()
    assert entry["status"] == ("ok" if reason is None else "fail")
    assert entry.get("reason") == reason
    assert isinstance(entry["latency_ms"], float)
    assert 0 <= entry["latency_ms"] < 1000


def test_a_check_slower_than_the_timeout_fails_even_when_it_passes() -> None:
    checks = ReadinessChecks(timeout_seconds=0.01)
    checks.add("db")
    checks.finish("db", time.monotonic() - 0.5, True, None)
    [entry] = checks.report()
    assert entry["status"] == "fail"
    assert str(entry["reason"]).startswith("took 0.5s, limit 0.01s")
    assert float(str(entry["latency_ms"])) >= 500


def test_a_check_still_running_after_the_timeout_is_reported_failed() -> None:
    """A hung dependency must not leave its last good result standing."""
    checks = ReadinessChecks(timeout_seconds=0.05)
    checks.add("db")
    finished(checks, "db", True, None)
    checks.begin("db")
    assert checks.report()[0]["status"] == "ok"  # running, within its time
    wait_until(lambda: checks.report()[0]["status"] == "fail", timeout=5)
    [entry] = checks.report()
    assert str(entry["reason"]).startswith("no answer after")
    assert float(str(entry["latency_ms"])) >= 50


def test_failing_and_recovering_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    checks = ReadinessChecks(timeout_seconds=5)
    checks.add("db")
    caplog.set_level(logging.INFO, logger="app.readiness")
    outcomes = [True, OSError("down"), OSError("still down"), False, True, True, False]
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            finished(checks, "db", None, outcome)
        else:
            finished(checks, "db", outcome, None)
    events = [(r.event, r.check, getattr(r, "error", None)) for r in caplog.records]  # type: ignore[attr-defined]
    assert events == [
        ("readiness_check_failed", "db", "OSError: down"),
        ("readiness_check_recovered", "db", None),
        ("readiness_check_failed", "db", "the check returned False"),
    ]


def test_an_async_check_on_a_blocking_service_fails_and_says_why() -> None:
    async def ping() -> None:
        """Never awaited: the thread calls it like a plain function."""

    config = Config(readiness_check_interval_seconds=10)
    checks = ReadinessChecks(config.readiness_check_timeout_seconds)
    threads = CheckThreads(checks, {"db": ping}, config)
    threads.start()
    try:
        wait_until(lambda: checks.report()[0].get("reason") != "not checked yet")
    finally:
        threads.stop()
    assert checks.report()[0]["reason"] == (
        "the check returned an awaitable: a Service's checks are plain functions"
    )


def test_a_result_that_arrives_after_stop_is_neither_recorded_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A check still running at shutdown must not log after `shutdown_complete`."""
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(10)
        raise OSError("down")

    caplog.set_level(logging.INFO, logger="app.readiness")
    checks = ReadinessChecks(timeout_seconds=5)
    threads = CheckThreads(checks, {"slow": slow}, Config(readiness_check_interval_seconds=0.01))
    threads.start()
    assert entered.wait(5)
    threads.stop()
    release.set()
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "check-slow"])
    assert checks.report()[0]["reason"] == "not checked yet"
    assert caplog.records == []


def test_check_threads_run_each_check_repeatedly_until_stopped() -> None:
    calls = {"fast": 0, "hung": 0}
    release = threading.Event()

    def fast() -> None:
        calls["fast"] += 1

    def hung() -> None:
        calls["hung"] += 1
        release.wait(10)

    config = Config(readiness_check_interval_seconds=0.01, readiness_check_timeout_seconds=0.05)
    checks = ReadinessChecks(config.readiness_check_timeout_seconds)
    threads = CheckThreads(checks, {"fast": fast, "hung": hung}, config)
    assert checks.names == ["fast", "hung"]
    threads.start()
    try:
        wait_until(lambda: calls["fast"] >= 5)  # the hung check does not hold the other up
        wait_until(lambda: checks.report()[1]["status"] == "fail")
        assert checks.report()[0]["status"] == "ok"
        assert calls["hung"] == 1
    finally:
        threads.stop()
        release.set()
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("check-")])
    count = calls["fast"]
    time.sleep(0.05)  # several intervals: a stopped thread would have run again
    assert calls["fast"] == count


# --- /readyz, app_up, metrics, heartbeat, in-process ----------------------------------------


def test_readiness_follows_the_checks_and_app_up_does_not(tmp_path: Path) -> None:
    config = Config()
    metrics = Metrics(config)
    heartbeat = HeartbeatFile(tmp_path / "beat.json", {}, 30.0)
    life = Lifecycle(config, metrics, heartbeat)
    life.checks.add("db")
    life.started()
    ok, body = life.readiness()
    assert not ok
    assert body == {
        "status": "not_ready",
        "checks": [
            {"name": "db", "status": "fail", "latency_ms": 0.0, "reason": "not checked yet"}
        ],
    }
    assert metrics.registry.get_sample_value("app_up") == 1
    assert metrics.registry.get_sample_value("app_readiness_check_ok", {"check": "db"}) == 0

    finished(life.checks, "db", True, None)
    ok, body = life.readiness()
    assert ok
    assert body["status"] == "ready"
    assert body["checks"] == [{"name": "db", "status": "ok", "latency_ms": ANY}]
    assert metrics.registry.get_sample_value("app_readiness_check_ok", {"check": "db"}) == 1

    life._beat()
    written = json.loads((tmp_path / "beat.json").read_text())
    assert written["checks"] == body["checks"]
    life.latch.close()


def test_without_checks_there_is_no_check_metric_and_an_empty_list(tmp_path: Path) -> None:
    config = Config()
    metrics = Metrics(config)
    life = Lifecycle(config, metrics, HeartbeatFile(tmp_path / "beat.json", {}, 30.0))
    life.started()
    assert life.readiness() == (True, {"status": "ready"})
    assert json.loads((tmp_path / "beat.json").read_text())["checks"] == []
    names = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    assert "app_readiness_check_ok" not in names
    life.latch.close()


# --- The real commands ------------------------------------------------------------------------


def ready(proc: Running) -> tuple[int, dict[str, Any]]:
    status, body = proc.get("/readyz")
    parsed: dict[str, Any] = json.loads(body)
    return status, parsed


def health(heartbeat: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`app-health --file heartbeat ARGS`, its report checked as in test_health.py."""
    code, report, stderr = run_script("--file", heartbeat, *args)
    assert stderr == ""
    return code, report


def dependency(report: dict[str, Any]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [c for c in report["checks"] if c["name"] == "dependency"]
    assert len(entries) == 1
    return entries[0]


def check_metric(proc: Running) -> float:
    text = proc.get("/metrics")[1]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "app_readiness_check_ok":
                return sample.value
    raise AssertionError("no app_readiness_check_ok in /metrics")


def heartbeat_says(heartbeat: Path, status: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            entries = json.loads(heartbeat.read_text())["checks"]
        except (OSError, ValueError):
            return False  # between writes
        return bool(entries) and entries[0]["status"] == status

    return check


@pytest.mark.parametrize("model", MODELS)
def test_a_failing_dependency_makes_the_service_unready_while_the_loop_goes_on(
    model: str, start: Callable[..., Running], tmp_path: Path, service_env: dict[str, str]
) -> None:
    dep, heartbeat = tmp_path / "dep", Path(service_env["APP_HEARTBEAT_FILE"])
    script = [sys.executable, str(HERE / f"readiness_service_{model}.py")]
    proc = start(script, DEP_FILE=str(dep), **CHECK_ENV)
    proc.wait_for_event("startup_success")

    wait_until(lambda: ready(proc)[1].get("checks", [{}])[0].get("reason") != "not checked yet")
    status, body = ready(proc)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"][0]["reason"] == "ConnectionError: dependency down"
    assert proc.get("/healthz")[0] == 200  # liveness is about the loop, not its dependencies
    iterations = proc.records[-1].get("iterations", 0)
    wait_until(lambda: json.loads(heartbeat.read_text())["iterations"] > iterations + 5)
    assert check_metric(proc) == 0
    code, report = health(heartbeat, "--ready")
    assert code == 1
    assert dependency(report)["status"] == "fail"
    assert health(heartbeat)[0] == 0

    dep.write_text("up")
    wait_until(lambda: ready(proc)[0] == 200)
    assert ready(proc)[1]["checks"][0]["status"] == "ok"
    assert check_metric(proc) == 1
    wait_until(heartbeat_says(heartbeat, "ok"))
    code, report = health(heartbeat, "--ready")
    assert code == 0, report
    assert dependency(report)["status"] == "ok"
    assert isinstance(dependency(report)["latency_ms"], float)

    dep.write_text("false")
    wait_until(lambda: ready(proc)[0] == 503)
    assert ready(proc)[1]["checks"][0]["reason"] == "the check returned False"
    wait_until(heartbeat_says(heartbeat, "fail"))
    assert dependency(health(heartbeat, "--ready")[1])["reason"] == "the check returned False"

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert proc.stderr == ""
    failed = [(r["check"], r["error"]) for r in proc.events("readiness_check_failed")]
    assert failed == [
        ("dependency", "ConnectionError: dependency down"),
        ("dependency", "the check returned False"),
    ]
    assert len(proc.events("readiness_check_recovered")) == 1


@pytest.mark.parametrize("model", MODELS)
def test_a_hung_check_is_unready_after_its_timeout_and_does_not_delay_shutdown(
    model: str, start: Callable[..., Running], tmp_path: Path
) -> None:
    dep = tmp_path / "dep"
    dep.write_text("up")
    script = [sys.executable, str(HERE / f"readiness_service_{model}.py")]
    proc = start(script, DEP_FILE=str(dep), **CHECK_ENV)
    wait_until(lambda: ready(proc)[0] == 200)

    (tmp_path / "dep.hang").touch()
    wait_until(lambda: ready(proc)[0] == 503)
    reason = ready(proc)[1]["checks"][0]["reason"]
    assert reason.startswith(("no answer after", "TimeoutError: no answer within")), reason
    assert proc.get("/healthz")[0] == 200

    stopped = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert time.monotonic() - stopped < 5  # not held up by the check that never returns
    assert proc.stderr == ""
    assert proc.records[-1]["event"] == "shutdown_complete"


@pytest.mark.parametrize("model", MODELS)
def test_the_example_service_is_ready_with_its_example_check(
    model: str, start: Callable[..., Running]
) -> None:
    proc = start(f"app-{model}")
    wait_until(lambda: ready(proc)[0] == 200)
    [check] = ready(proc)[1]["checks"]
    assert check["name"] == "example"
    assert check["status"] == "ok"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
