"""Log format: one JSON (or text) line per record on stdout, for every logger and error path."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import math
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Config
from app.logging_setup import (
    JsonFormatter,
    configure_logging,
    log_asyncio_exception,
    write_now,
)

RUN_ID = "5b1d6c1e-2f4a-4c47-9d8e-0c6f3f1a2b3c"
CONFIG = Config(
    service_name="billing",
    env="stg",
    instance="host-1",
    version="1.2.3",
    commit="abc123",
    log_level="DEBUG",
)
LIFECYCLE = {"config_source": "defaults+env", "config_hash": "sha256:" + "0" * 64}
IDENTITY = {"service": "billing", "instance": "host-1", "env": "stg", "run_id": RUN_ID}
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

log = logging.getLogger("tests.logging")

Read = Callable[[], list[dict[str, Any]]]


def parse(out: str) -> list[dict[str, Any]]:
    """Every line is one JSON object."""
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def records() -> Read:
    """Logging configured, its handler pointed at a buffer; returns a reader of new records.

    (capsys cannot serve here: it swaps its buffer between fixture setup and the test.)
    """
    handler = configure_logging(CONFIG, run_id=RUN_ID, lifecycle=LIFECYCLE)
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return parse(out)

    return read


def keep_only_our_handler() -> None:
    """pytest's own log capture re-raises formatting errors; these tests are about ours."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class DatabaseDown(Exception):
    """An exception defined outside builtins."""


# --- JSON fields -----------------------------------------------------------------------------


def test_record_carries_identity_logger_and_message(records: Read) -> None:
    log.info("charged %s for %d items", "alice", 3)

    [record] = records()
    assert TS.fullmatch(record["ts"])
    assert record["level"] == "info"
    assert {k: record[k] for k in IDENTITY} == IDENTITY
    assert record["logger"] == "tests.logging"
    assert record["msg"] == "charged alice for 3 items"


def test_record_without_event_has_no_lifecycle_fields(records: Read) -> None:
    log.info("plain")

    [record] = records()
    assert not {"event", "version", "commit", "config_source", "config_hash"} & record.keys()


def test_record_with_event_carries_lifecycle_fields(records: Read) -> None:
    log.info("service started", extra={"event": "startup_success"})

    [record] = records()
    assert record["event"] == "startup_success"
    assert record["version"] == "1.2.3"
    assert record["commit"] == "abc123"
    assert record["config_source"] == "defaults+env"
    assert record["config_hash"] == LIFECYCLE["config_hash"]


def test_extra_fields_are_top_level_keys(records: Read) -> None:
    log.info("order", extra={"order_id": 42, "tags": ["new", "eu"], "amount": 9.5, "ok": True})

    [record] = records()
    assert record["order_id"] == 42
    assert record["tags"] == ["new", "eu"]
    assert record["amount"] == 9.5
    assert record["ok"] is True


@pytest.mark.parametrize(
    ("emit", "level"),
    [
        (log.debug, "debug"),
        (log.info, "info"),
        (log.warning, "warning"),
        (log.error, "error"),
        (log.critical, "error"),
    ],
)
def test_level_names_are_lower_case_and_critical_shows_as_error(
    records: Read, emit: Callable[[str], None], level: str
) -> None:
    emit("something")

    [record] = records()
    assert record["level"] == level


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (1767225600.0, "2026-01-01T00:00:00.000Z"),
        (1767225600.125, "2026-01-01T00:00:00.125Z"),
        (1767225600.9999, "2026-01-01T00:00:00.999Z"),  # truncated, never ".1000"
        (1782863999.5, "2026-06-30T23:59:59.500Z"),
    ],
)
def test_timestamp_is_utc_iso_8601_with_milliseconds(
    monkeypatch: pytest.MonkeyPatch, created: float, expected: str
) -> None:
    """A fixed record time, formatted under a local time zone far from UTC."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None)
    record.created = created
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        data = json.loads(JsonFormatter(IDENTITY, {}).format(record))
    finally:
        monkeypatch.undo()
        time.tzset()

    assert data["ts"] == expected


def test_error_record_carries_error_message(records: Read) -> None:
    log.error("cannot reach %s", "db:5432")
    log.warning("slow")

    error, warning = records()
    assert error["error"] == "cannot reach db:5432"
    assert "error" not in warning


def test_exception_record_carries_type_and_one_line_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(CONFIG, run_id=RUN_ID)
    try:
        raise DatabaseDown("primary\nis down")
    except DatabaseDown:
        log.exception("iteration failed", extra={"event": "iteration_failed"})

    out = capsys.readouterr().out
    assert out.count("\n") == 1  # the stack's newlines are escaped inside the JSON string
    [record] = parse(out)
    assert record["level"] == "error"
    assert record["error"] == "DatabaseDown: primary\nis down"
    assert record["exception_type"].endswith("test_logging.DatabaseDown")
    assert record["stack"].startswith("Traceback (most recent call last):")
    assert 'raise DatabaseDown("primary\\nis down")' in record["stack"]
    assert record["stack"].endswith("DatabaseDown: primary\nis down")


def test_builtin_exception_type_has_no_module_and_empty_message_shows_the_type(
    records: Read,
) -> None:
    try:
        raise KeyError
    except KeyError:
        log.warning("lookup failed", exc_info=True)

    [record] = records()
    assert record["exception_type"] == "KeyError"
    assert record["error"] == "KeyError"


def test_stack_info_is_rendered_into_stack(records: Read) -> None:
    log.info("where am I", stack_info=True)

    [record] = records()
    assert record["stack"].startswith("Stack (most recent call last):")
    assert "test_stack_info_is_rendered_into_stack" in record["stack"]


# --- Values JSON cannot encode: rendered, never dropped ----------------------------------------


def circular() -> dict[str, Any]:
    data: dict[str, Any] = {"name": "loop"}
    data["self"] = data
    return data


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(object(), "<object object at", id="object"),
        pytest.param({3}, "{3}", id="set"),
        pytest.param(b"raw", "b'raw'", id="bytes"),
        pytest.param(Path("/srv/data"), "/srv/data", id="path"),
        pytest.param(math.nan, "nan", id="nan"),
        pytest.param(-math.inf, "-inf", id="inf"),
        pytest.param(circular(), "{'name': 'loop', 'self': {...}}", id="circular-dict"),
        pytest.param({(1, 2): "tuple key"}, "{(1, 2): 'tuple key'}", id="non-str-key"),
        pytest.param(Unprintable(), "<unprintable Unprintable>", id="str-raises"),
    ],
)
def test_value_json_cannot_encode_is_rendered_as_text(
    records: Read, value: object, shown: str
) -> None:
    log.info("odd value", extra={"value": value, "count": 3})

    [record] = records()
    assert record["msg"] == "odd value"
    assert record["value"].startswith(shown)
    assert record["count"] == 3


@pytest.mark.parametrize(
    ("msg", "args", "shown"),
    [
        pytest.param("%d items", ("many",), "%d items (bad log args: ('many',))", id="wrong-type"),
        pytest.param("%s and %s", ("one",), "%s and %s (bad log args: ('one',))", id="too-few"),
        pytest.param("value %s", (Unprintable(),), "value %s (bad log args: (<", id="str-raises"),
    ],
)
def test_bad_format_arguments_keep_the_record(
    records: Read, msg: str, args: tuple[object, ...], shown: str
) -> None:
    keep_only_our_handler()

    log.warning(msg, *args)

    [record] = records()
    assert record["level"] == "warning"
    assert record["msg"].startswith(shown)


def test_message_object_whose_str_raises_keeps_the_record(records: Read) -> None:
    keep_only_our_handler()

    log.error(Unprintable())

    [record] = records()
    assert record["msg"].startswith("<unprintable Unprintable>")
    assert record["level"] == "error"


# --- Text format -----------------------------------------------------------------------------


def test_text_format_is_one_readable_line_with_level_and_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(
        Config(log_format="text", service_name="billing"), run_id=RUN_ID, lifecycle=LIFECYCLE
    )

    log.info("service started", extra={"event": "startup_success", "port": 8000, "tags": ["a"]})
    log.warning("slow", extra={"note": "two\nlines", "ratio": math.nan})

    started, slow = capsys.readouterr().out.splitlines()
    assert TS.fullmatch(started.split(" ")[0])
    assert " INFO " in started
    assert "tests.logging [startup_success] service started" in started
    assert "port=8000" in started
    assert 'tags=["a"]' in started
    assert "billing" not in started  # identity fields stay out of the text line
    assert "config_hash" not in started
    assert " WARNING " in slow
    assert "note=two\\nlines" in slow
    assert "ratio=nan" in slow


def test_text_format_puts_an_exception_on_the_same_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Config(log_format="text"), run_id=RUN_ID)
    try:
        raise DatabaseDown("gone")
    except DatabaseDown:
        log.exception("iteration failed", extra={"event": "iteration_failed"})

    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert " ERROR " in out
    assert "[iteration_failed]" in out
    assert "stack=Traceback (most recent call last):\\n" in out


# --- configure_logging -----------------------------------------------------------------------


def test_third_party_loggers_come_out_in_the_same_format(records: Read) -> None:
    logging.getLogger("urllib3.connectionpool").warning("retrying %s", "GET /")

    [record] = records()
    assert record["logger"] == "urllib3.connectionpool"
    assert record["msg"] == "retrying GET /"
    assert record["service"] == "billing"


def test_warnings_come_out_as_json_records(records: Read) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the test suite turns warnings into errors
        warnings.warn("old API", DeprecationWarning, stacklevel=1)

    [record] = records()
    assert record["logger"] == "py.warnings"
    assert record["level"] == "warning"
    assert "DeprecationWarning: old API" in record["msg"]


def test_log_level_setting_filters_lower_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Config(log_level="WARNING"), run_id=RUN_ID)

    log.info("hidden")
    log.warning("shown")

    assert [r["msg"] for r in parse(capsys.readouterr().out)] == ["shown"]


def test_configuring_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(CONFIG, run_id=RUN_ID)
    configure_logging(CONFIG, run_id="second-run")

    log.info("once")

    [record] = parse(capsys.readouterr().out)
    assert record["run_id"] == "second-run"


def test_handler_writes_to_the_stdout_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)

    handler = configure_logging(CONFIG, run_id=RUN_ID)
    log.info("to the stream")

    assert isinstance(handler, logging.StreamHandler)
    assert parse(stream.getvalue())[0]["msg"] == "to the stream"


# --- Uncaught exceptions ---------------------------------------------------------------------


def test_main_thread_uncaught_exception_is_one_json_record_and_no_traceback(
    tmp_path: Path,
) -> None:
    script = tmp_path / "crash.py"
    script.write_text(
        "from app.config import Config\n"
        "from app.logging_setup import configure_logging\n"
        "configure_logging(Config(), run_id='r-1')\n"
        "raise RuntimeError('boom')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 1
    assert result.stderr == ""
    [record] = parse(result.stdout)
    assert record["event"] == "crashed"
    assert record["reason"] == "uncaught"
    assert record["level"] == "error"
    assert record["run_id"] == "r-1"
    assert record["exception_type"] == "RuntimeError"
    assert record["error"] == "RuntimeError: boom"
    assert "raise RuntimeError('boom')" in record["stack"]


def test_sys_excepthook_logs_a_crashed_record(records: Read) -> None:
    try:
        raise DatabaseDown("lost")
    except DatabaseDown as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)

    [record] = records()
    assert record["event"] == "crashed"
    assert record["exception_type"].endswith("DatabaseDown")
    assert record["version"] == "1.2.3"


def test_exception_in_a_thread_is_a_json_record(records: Read) -> None:
    def work() -> None:
        raise DatabaseDown("in a thread")

    thread = threading.Thread(target=work, name="poller")
    thread.start()
    thread.join()

    [record] = records()
    assert record["event"] == "unhandled_exception"
    assert record["thread_name"] == "poller"
    assert record["msg"] == "exception in thread poller"
    assert record["error"] == "DatabaseDown: in a thread"
    assert "in work" in record["stack"]


def test_system_exit_in_a_thread_is_quiet(records: Read) -> None:
    thread = threading.Thread(target=sys.exit, args=(3,))
    thread.start()
    thread.join()

    assert records() == []


def test_unraisable_exception_is_a_json_record(records: Read) -> None:
    class Leaky:
        def __del__(self) -> None:
            raise DatabaseDown("in __del__")

    leaky = Leaky()
    del leaky  # CPython finalises here; the exception cannot propagate

    [record] = records()
    assert record["event"] == "unhandled_exception"
    assert record["level"] == "error"
    assert "Leaky.__del__" in record["msg"]
    assert record["where"]  # the interpreter's note, or "unraisable"
    assert record["error"] == "DatabaseDown: in __del__"


def unhandled(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out asyncio's own debug records (the selector it chose)."""
    return [r for r in found if r.get("event") == "unhandled_exception"]


@pytest.fixture
def event_loop_with_handler() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(log_asyncio_exception)
    yield loop
    loop.close()


def test_task_exception_nobody_awaited_is_a_json_record(
    records: Read, event_loop_with_handler: asyncio.AbstractEventLoop
) -> None:
    loop = event_loop_with_handler

    async def fail() -> None:
        raise DatabaseDown("forgotten task")

    task = loop.create_task(fail())
    loop.run_until_complete(asyncio.wait([task]))  # wait() does not retrieve the exception
    del task
    gc.collect()  # the task reports its lost exception when it is collected

    [record] = unhandled(records())
    assert record["event"] == "unhandled_exception"
    assert record["where"] == "asyncio"
    assert record["msg"] == "Task exception was never retrieved"
    assert record["error"] == "DatabaseDown: forgotten task"
    assert "in fail" in record["stack"]


def test_asyncio_error_without_exception_is_logged_with_its_message(
    records: Read, event_loop_with_handler: asyncio.AbstractEventLoop
) -> None:
    event_loop_with_handler.call_exception_handler({"message": "socket.send() raised"})

    [record] = unhandled(records())
    assert record["msg"] == "socket.send() raised"
    assert record["error"] == "socket.send() raised"
    assert "exception_type" not in record


# --- write_now -------------------------------------------------------------------------------


def test_write_now_writes_a_formatted_record_to_stdout_after_pending_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(CONFIG, run_id=RUN_ID, lifecycle=LIFECYCLE)
    log.info("before")

    write_now(logging.CRITICAL, "iteration stuck", event="crashed", reason="iteration_stuck")

    before, now = parse(capfd.readouterr().out)
    assert before["msg"] == "before"
    assert now["msg"] == "iteration stuck"
    assert now["level"] == "error"
    assert now["event"] == "crashed"
    assert now["reason"] == "iteration_stuck"
    assert now["run_id"] == RUN_ID
    assert now["config_hash"] == LIFECYCLE["config_hash"]


def test_write_now_uses_fd_1_when_the_handler_stream_has_no_fd(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    configure_logging(CONFIG, run_id=RUN_ID)

    write_now(logging.ERROR, "forced", event="shutdown_forced")

    [record] = parse(capfd.readouterr().out)
    assert record["event"] == "shutdown_forced"
    assert record["service"] == "billing"


def test_write_now_without_configured_logging_still_writes_json(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger().handlers.clear()  # restored by the _restore_logging fixture

    write_now(logging.WARNING, "early", event="shutting_down")

    [record] = parse(capfd.readouterr().out)
    assert record["msg"] == "early"
    assert record["level"] == "warning"
    assert TS.fullmatch(record["ts"])
