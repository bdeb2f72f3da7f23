"""Crash paths test_e2e.py leaves out: KeyboardInterrupt and SystemExit raised inside an iteration.

`except Exception` around an iteration does not catch them, so they unwind the loop: the
entry point logs one `crashed` record with the stack and exits 1, the heartbeat is removed,
and nothing reaches stderr. (Exceptions in setup, teardown and a thread, and SystemExit in a
sync iteration, are in test_e2e.py; an orphan task in test_e2e_async.py.) Also: a metric whose
callback raises is one JSON record per scrape and a 500, not a traceback on stderr.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import MODELS, fault, prefer
from test_e2e import Start, assert_clean_output, count

BASE_EXCEPTIONS = [
    ("sync", "keyboard_interrupt", "KeyboardInterrupt", "raise KeyboardInterrupt"),
    ("async", "keyboard_interrupt", "KeyboardInterrupt", "raise KeyboardInterrupt"),
    ("async", "system_exit", "SystemExit", "raise SystemExit(3)"),
]


@pytest.mark.parametrize(
    ("model", "fault_name", "exception", "raised"),
    [case for case in BASE_EXCEPTIONS if case[0] in MODELS],
)
def test_base_exception_in_an_iteration_is_one_crashed_record_and_status_1(
    start: Start,
    service_env: dict[str, str],
    model: str,
    fault_name: str,
    exception: str,
    raised: str,
) -> None:
    proc = start(fault(model, fault_name))
    assert proc.wait() == 1
    [crashed] = proc.events("crashed")
    assert crashed["reason"] == "uncaught"
    assert crashed["exit_status"] == 1
    assert crashed["exception_type"] == exception
    assert raised in crashed["stack"]
    assert "run_iteration" in crashed["stack"]
    assert [r for r in proc.records if "stack" in r] == [crashed]  # one record with the stack
    assert proc.records[-1] == crashed  # the last record is flushed before exit
    assert count(proc, "shutdown_complete") == 0
    assert not Path(service_env["APP_HEARTBEAT_FILE"]).exists()
    assert_clean_output(proc)


def test_metric_that_fails_to_collect_is_a_json_record_and_a_500(start: Start) -> None:
    """A user's metric callback that raises must not put a traceback on stderr at each scrape."""
    proc = start(fault(prefer("sync"), "bad_metric"))
    proc.wait_for_event("startup_success")

    status, body = proc.get("/metrics")

    assert status == 500
    assert json.loads(body)["error"] == "ConnectionError"
    record = proc.wait_for_event("unhandled_exception")
    assert record["where"] == "metrics server"
    assert "queue unreachable on purpose" in record["stack"]
    assert proc.get("/healthz")[0] == 200  # the server goes on serving
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert_clean_output(proc)
