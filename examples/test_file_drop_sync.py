"""The file-drop recipe: where files end up, restarts, metrics, and a real `--once` run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from file_drop_sync import FileDrop

from app.config import Config

EXAMPLE = Path(__file__).with_name("file_drop_sync.py")
GOOD = '{"amount": 2}\n\n{"amount": 3.5}\n'


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    monkeypatch.setenv("INBOX_DIR", str(path))
    return path


def run_once(service_cls: type[FileDrop] = FileDrop) -> FileDrop:
    """Start a new service (as a restart would), run one iteration with setup and teardown."""
    service = service_cls(Config(metrics_enabled=False, loop_sleep_seconds=0))
    try:
        assert service.start(once=True) == 0
    finally:
        service.lifecycle.latch.close()
    return service


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.__dict__.get("event") == name]


def count(service: FileDrop, outcome: str) -> float | None:
    return service.metrics.registry.get_sample_value("app_files_total", {"outcome": outcome})


def test_good_files_go_to_done_and_bad_ones_to_failed_without_blocking_the_rest(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (inbox / "0-not-json.jsonl").write_text("{oops\n")  # sorted first: must not block the rest
    (inbox / "1-good.jsonl").write_text(GOOD)
    (inbox / "2-no-amount.jsonl").write_text('{"amount": 1}\n{"price": 2}\n')
    (inbox / "3-not-utf8.jsonl").write_bytes(b"\xff\xfe\n")
    (inbox / "4-empty.jsonl").write_text("")

    service = run_once()

    assert names(inbox) == []
    assert names(inbox / "done") == ["1-good.jsonl", "4-empty.jsonl"]
    assert names(inbox / "failed") == ["0-not-json.jsonl", "2-no-amount.jsonl", "3-not-utf8.jsonl"]
    assert json.loads((inbox / "out" / "1-good.jsonl").read_text()) == {"records": 2, "total": 5.5}
    assert json.loads((inbox / "out" / "4-empty.jsonl").read_text()) == {"records": 0, "total": 0}
    assert (count(service, "done"), count(service, "failed")) == (2.0, 3.0)
    failed = {r["file"]: r["error"] for r in events(caplog, "file_failed")}
    assert sorted(failed) == ["0-not-json.jsonl", "2-no-amount.jsonl", "3-not-utf8.jsonl"]
    assert failed["2-no-amount.jsonl"] == "line 2: expected an object with a numeric amount"
    assert "utf-8" in failed["3-not-utf8.jsonl"]
    assert service.lifecycle.state.failures == 0  # bad files do not fail the iteration


def test_hidden_and_temporary_files_are_left_alone(inbox: Path) -> None:
    for name in (".orders.jsonl", "orders.jsonl.tmp"):
        (inbox / name).write_text("half a line")
    (inbox / "subdir").mkdir()

    service = run_once()

    assert names(inbox) == [".orders.jsonl", "orders.jsonl.tmp"]
    assert names(inbox / "done") == names(inbox / "failed") == []
    assert (count(service, "done"), count(service, "failed")) == (0.0, 0.0)  # exported at 0


class StopsAfterFirstFile(FileDrop):
    """Asks for a stop inside its first file, as SIGTERM would."""

    def work(self, text: str) -> dict[str, float]:
        self.stop("test")
        return super().work(text)


def test_a_stop_leaves_the_rest_for_a_restart_which_never_redoes_done_files(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (inbox / name).write_text(GOOD)

    first = run_once(StopsAfterFirstFile)
    assert names(inbox) == ["b.jsonl", "c.jsonl"]
    assert names(inbox / "done") == ["a.jsonl"]
    assert count(first, "done") == 1.0

    caplog.clear()
    second = run_once()  # the restart
    assert names(inbox) == []
    assert names(inbox / "done") == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert count(second, "done") == 2.0
    assert [r["file"] for r in events(caplog, "file_done")] == ["b.jsonl", "c.jsonl"]


def test_a_file_taken_twice_gives_the_same_result(inbox: Path) -> None:
    """A crash after the result was written but before the move: the file is done again."""
    (inbox / "a.jsonl").write_text(GOOD)
    run_once()
    result = (inbox / "out" / "a.jsonl").read_bytes()
    os.replace(inbox / "done" / "a.jsonl", inbox / "a.jsonl")  # as if the move never happened

    service = run_once()

    assert (inbox / "out" / "a.jsonl").read_bytes() == result
    assert names(inbox / "done") == ["a.jsonl"]
    assert count(service, "done") == 1.0


def test_once_as_a_real_process(tmp_path: Path, inbox: Path) -> None:
    (inbox / "good.jsonl").write_text(GOOD)
    (inbox / "bad.jsonl").write_text("not json\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env |= {
        "APP_METRICS_ENABLED": "false",
        "APP_HEARTBEAT_FILE": str(tmp_path / "heartbeat.json"),
        "INBOX_DIR": str(inbox),
    }

    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    events = {(r["event"], r.get("file")) for r in records if "event" in r}
    assert {("file_done", "good.jsonl"), ("file_failed", "bad.jsonl")} <= events
    assert records[-1]["event"] == "shutdown_complete"
    assert names(inbox / "done") == ["good.jsonl"]
    assert names(inbox / "failed") == ["bad.jsonl"]
