"""The real commands as processes: real signals, log lines, HTTP endpoints, exit statuses.

Each test runs for every model this copy has (conftest.MODELS); what only the asyncio loop
does is in test_e2e_async.py.
"""

from __future__ import annotations

import http.server
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import COMMANDS, MODELS, Running, fault, prefer, wait_until

SIGNALS = [signal.SIGTERM, signal.SIGINT]
REQUIRED_FIELDS = {"ts", "level", "service", "logger", "instance", "env", "run_id", "msg"}
LIFECYCLE_FIELDS = {"event", "version", "commit", "config_source", "config_hash"}

Start = Callable[..., Running]


def assert_clean_output(proc: Running) -> None:
    """Every stdout line is a JSON object with the §4 fields; stderr is empty."""
    assert proc.stderr == ""
    for record in proc.records:
        if "marker" in record:
            continue
        assert record.keys() >= REQUIRED_FIELDS, record
        if "event" in record:
            assert record.keys() >= LIFECYCLE_FIELDS, record


def metric_value(body: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text format."""
    return float(next(line.split()[1] for line in body.splitlines() if line.startswith(name + " ")))


def count(proc: Running, event: str) -> int:
    return len(proc.events(event))


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("command", COMMANDS)
def test_signal_stops_service_cleanly(
    start: Start, service_env: dict[str, str], command: str, sig: signal.Signals
) -> None:
    heartbeat = Path(service_env["APP_HEARTBEAT_FILE"])
    proc = start(command)
    proc.wait_for_event("startup_success")
    wait_until(lambda: count(proc, "shutting_down") == 0 and proc.get("/readyz")[0] == 200)
    assert heartbeat.exists()
    status, body = proc.get("/metrics")
    assert status == 200
    assert "app_up 1.0" in body
    assert 'app_build_info{commit="unknown",env="dev",service="python-service"' in body
    assert "process_resident_memory_bytes" in body
    assert proc.get("/healthz")[0] == 200

    proc.proc.send_signal(sig)
    assert proc.wait() == 0
    assert not heartbeat.exists()
    assert count(proc, "shutting_down") == count(proc, "shutdown_complete") == 1
    assert proc.events("shutting_down")[0]["reason"] == sig.name
    complete = proc.events("shutdown_complete")[0]
    assert complete["exit_status"] == 0
    assert complete["shutdown_duration_ms"] >= 0
    assert_clean_output(proc)


@pytest.mark.parametrize("command", COMMANDS)
def test_stop_ends_a_long_sleep_at_once(start: Start, command: str) -> None:
    """loop_sleep_seconds: 600 must not delay a stop: the test's 10 s wait would fail."""
    proc = start(command, APP_LOOP_SLEEP_SECONDS="600")
    proc.wait_for_event("startup_success")
    wait_until(lambda: proc.records and proc.records[-1].get("msg") == "example iteration")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.events("shutdown_complete")[0]["shutdown_duration_ms"] < 5000


def busy_loop_stops_cleanly(start: Start, model: str, heartbeat: Path, sig: signal.Signals) -> None:
    """Start a no-op service with no sleep, signal it mid-loop, check the whole shutdown."""
    proc = start(fault(model, "ok"), APP_LOOP_SLEEP_SECONDS="0")
    wait_until(lambda: _iterations(heartbeat) > 0)
    proc.proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0, proc.lines[-3:]
    assert count(proc, "shutting_down") == count(proc, "shutdown_complete") == 1
    assert not heartbeat.exists()
    assert_clean_output(proc)


def _iterations(heartbeat: Path) -> int:
    try:
        return int(json.loads(heartbeat.read_text())["iterations"])
    except (OSError, ValueError, KeyError):  # not written yet, or mid-rename
        return 0


# 4 signals per model in the quick run; the slow run sends 60, every one a clean exit.
@pytest.mark.parametrize("rounds", [2, pytest.param(30, marks=pytest.mark.slow)])
@pytest.mark.parametrize("model", MODELS)
def test_signal_in_busy_loop_exits_cleanly(
    start: Start, service_env: dict[str, str], model: str, rounds: int
) -> None:
    """Signal handlers must not deadlock the loop they interrupt (see STYLE: Lifecycle)."""
    heartbeat = Path(service_env["APP_HEARTBEAT_FILE"])
    for sig in SIGNALS * rounds:
        busy_loop_stops_cleanly(start, model, heartbeat, sig)


@pytest.mark.parametrize("model", MODELS)
def test_second_signal_forces_exit(start: Start, model: str) -> None:
    proc = start(fault(model, "slow_teardown"))
    proc.wait_for_event("startup_success")
    proc.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: any(r.get("marker") == "teardown_begin" for r in proc.records))
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 1
    forced = proc.events("shutdown_forced")
    assert len(forced) == 1
    assert forced[0]["reason"] == "SIGINT"
    assert forced[0]["level"] == "error"
    assert count(proc, "shutdown_complete") == 0
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_failing_iterations_are_logged_and_the_loop_goes_on(start: Start, model: str) -> None:
    proc = start(fault(model, "raise_always"))
    wait_until(lambda: count(proc, "iteration_failed") >= 3)
    failed = proc.events("iteration_failed")[0]
    assert failed["level"] == "error"
    assert failed["exception_type"] == "ValueError"
    assert failed["error"] == "ValueError: always failing"
    assert "Traceback" in failed["stack"]
    assert "run_iteration" in failed["stack"]
    status, body = proc.get("/metrics")
    assert status == 200
    assert metric_value(body, "app_iteration_failures_total") >= 3
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_failure_budget_ends_service_with_status_1(
    start: Start, service_env: dict[str, str], model: str
) -> None:
    proc = start(fault(model, "raise_always"), APP_MAX_CONSECUTIVE_FAILURES="3")
    assert proc.wait() == 1
    assert count(proc, "iteration_failed") == 3
    assert proc.events("shutting_down")[0]["reason"] == "max_consecutive_failures"
    assert proc.events("shutdown_complete")[0]["exit_status"] == 1
    assert not Path(service_env["APP_HEARTBEAT_FILE"]).exists()
    assert_clean_output(proc)


def test_successes_reset_the_failure_budget(start: Start) -> None:
    """Failing every other iteration never makes 2 failures in a row."""
    proc = start(fault(prefer("sync"), "raise_odd"), APP_MAX_CONSECUTIVE_FAILURES="2")
    wait_until(lambda: count(proc, "iteration_failed") >= 4)
    assert proc.proc.poll() is None
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.parametrize("model", MODELS)
def test_setup_failure_is_startup_failed_with_stack(
    start: Start, service_env: dict[str, str], model: str
) -> None:
    proc = start(fault(model, "raise_setup"))
    assert proc.wait() == 1
    failed = proc.events("startup_failed")
    assert len(failed) == 1
    assert "setup failed on purpose" in failed[0]["error"]
    assert "raise RuntimeError" in failed[0]["stack"]
    assert count(proc, "startup_success") == count(proc, "shutdown_complete") == 0
    assert not Path(service_env["APP_HEARTBEAT_FILE"]).exists()
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_teardown_failure_exits_1_after_logging_it(start: Start, model: str) -> None:
    proc = start(fault(model, "raise_teardown"))
    proc.wait_for_event("startup_success")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 1
    crashed = proc.events("crashed")
    assert [c["reason"] for c in crashed] == ["teardown_failed"]
    assert "teardown failed on purpose" in crashed[0]["stack"]
    assert proc.events("shutdown_complete")[0]["exit_status"] == 1
    assert_clean_output(proc)


@pytest.mark.parametrize("command", COMMANDS)
def test_port_in_use_is_a_clear_startup_failure(start: Start, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start(command, APP_METRICS_PORT=str(port))
        assert proc.wait() == 1
    failed = proc.events("startup_failed")
    assert len(failed) == 1
    assert f"127.0.0.1:{port}" in failed[0]["error"]
    assert "stack" not in failed[0]
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_slow_iteration_finishes_before_shutdown(start: Start, model: str) -> None:
    proc = start(fault(model, "slow_iteration"), FAULT_SECONDS="1", APP_LOOP_SLEEP_SECONDS="5")
    wait_until(lambda: any(r.get("marker") == "iteration_begin" for r in proc.records))
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    complete = proc.events("shutdown_complete")[0]
    assert complete["iterations"] == 1
    assert complete["failures"] == 0


# Sync: an iteration stuck in a blocking call. Async: a blocking call in a coroutine, which
# stops the whole event loop.
WATCHDOG_CASES = {
    "sync": ("stuck", "iteration_stuck"),
    "async": ("block_loop", "event_loop_blocked"),
}


@pytest.mark.parametrize(
    ("model", "fault_name", "reason"), [(model, *WATCHDOG_CASES[model]) for model in MODELS]
)
def test_watchdog_ends_a_stuck_process_with_its_stack(
    start: Start, model: str, fault_name: str, reason: str
) -> None:
    proc = start(fault(model, fault_name), APP_ITERATION_TIMEOUT_SECONDS="0.3")
    assert proc.wait() == 1
    crashed = proc.events("crashed")
    assert len(crashed) == 1
    assert crashed[0]["reason"] == reason
    assert "time.sleep(3600)" in crashed[0]["stack"]
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_background_thread_exception_is_logged_as_json(start: Start, model: str) -> None:
    proc = start(fault(model, "thread_error"))
    record = proc.wait_for_event("unhandled_exception")
    assert record["thread_name"] == "worker-1"
    assert record["exception_type"] == "LookupError"
    assert "background thread failed on purpose" in record["stack"]
    proc.wait_for_event("startup_success")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0  # the service goes on: a thread's failure is not the loop's
    assert count(proc, "shutdown_complete") == 1
    assert_clean_output(proc)


def test_system_exit_in_an_iteration_is_a_crash(start: Start, service_env: dict[str, str]) -> None:
    proc = start(fault(prefer("sync"), "system_exit"))
    assert proc.wait() == 1
    assert proc.events("crashed")[0]["exception_type"] == "SystemExit"
    assert not Path(service_env["APP_HEARTBEAT_FILE"]).exists()
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("fault_name", "status"), [("ok", 0), ("raise_always", 1)])
def test_once_runs_one_iteration_and_reports_it(
    start: Start, service_env: dict[str, str], model: str, fault_name: str, status: int
) -> None:
    proc = start(fault(model, fault_name), "--once", APP_LOOP_SLEEP_SECONDS="600")
    assert proc.wait() == status
    complete = proc.events("shutdown_complete")[0]
    assert complete["iterations"] == 1
    assert complete["reason"] == "once"
    assert count(proc, "metrics_listening") == 0  # a cron run serves nothing
    assert not Path(service_env["APP_HEARTBEAT_FILE"]).exists()
    assert_clean_output(proc)


class _Gateway(http.server.BaseHTTPRequestHandler):
    pushes: list[tuple[str, str, bytes]] = []  # noqa: RUF012 - test-only recorder

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.pushes.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    _Gateway.pushes = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("model", MODELS)
def test_once_pushes_metrics_to_the_pushgateway(start: Start, gateway: str, model: str) -> None:
    proc = start(fault(model, "ok"), "--once", APP_PUSHGATEWAY_URL=gateway, APP_INSTANCE="box-1")
    assert proc.wait() == 0
    assert len(_Gateway.pushes) == 1
    method, path, body = _Gateway.pushes[0]
    assert method == "PUT"
    assert path == "/metrics/job/python-service/instance/box-1"
    assert b"app_last_success_timestamp_seconds" in body
    assert b"app_iterations_total 1.0" in body
    assert count(proc, "metrics_pushed") == 1


def test_unreachable_pushgateway_is_logged_and_keeps_the_status(start: Start) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    proc = start(fault(prefer("sync"), "ok"), "--once", APP_PUSHGATEWAY_URL=url)
    assert proc.wait() == 0
    assert count(proc, "push_failed") == 1
    assert_clean_output(proc)


@pytest.mark.parametrize("model", MODELS)
def test_readiness_and_up_drop_as_soon_as_shutdown_begins(start: Start, model: str) -> None:
    """A stop request flips /readyz and app_up before the in-flight iteration ends."""
    proc = start(fault(model, "slow_iteration"), FAULT_SECONDS="1.5", APP_LOOP_SLEEP_SECONDS="0")
    wait_until(lambda: proc.get("/readyz")[0] == 200)
    wait_until(lambda: any(r.get("marker") == "iteration_begin" for r in proc.records))
    proc.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: proc.get("/readyz")[0] == 503)
    assert "app_up 0.0" in proc.get("/metrics")[1]
    assert proc.wait() == 0
