"""One log record per line on stdout (JSON, or text for humans), and hooks for every error path."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from app.config import Config

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    [*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"]
)
_LEVELS = {logging.CRITICAL: "error", logging.ERROR: "error", logging.WARNING: "warning"}
_LEVELS |= {logging.INFO: "info", logging.DEBUG: "debug"}
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=lambda v: _text(v))
_PLAIN = (str, int, bool, type(None))

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object: identity fields, `msg`, extras, error details."""

    def __init__(self, identity: Mapping[str, object], lifecycle: Mapping[str, object]) -> None:
        super().__init__()
        self.identity = dict(identity)  # on every record: service, instance, env, run_id
        self.lifecycle = dict(lifecycle)  # on records with an `event`: version, commit, config_*

    def format(self, record: logging.LogRecord) -> str:
        return _dumps(self.fields(record))

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": _LEVELS.get(record.levelno) or record.levelname.lower(),
            **self.identity,
            "logger": record.name,
            "msg": _message(record),
        }
        attrs = record.__dict__
        extras = attrs.keys() - _STANDARD_ATTRS  # in C, not a loop over ~25 keys
        # With several, keep the caller's order.
        for key in [k for k in attrs if k in extras] if len(extras) > 1 else extras:
            out[key] = attrs[key]
        if "event" in out:
            for key, value in self.lifecycle.items():
                out.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out.setdefault("error", _summary(exc))
            out["exception_type"] = _type_name(type(exc))
            out["stack"] = self.formatException(record.exc_info).rstrip()
        elif record.levelno >= logging.ERROR:
            out.setdefault("error", out["msg"])
        if record.stack_info:
            out["stack"] = (out.get("stack", "") + "\n" + record.stack_info).strip()
        return out


class TextFormatter(JsonFormatter):
    """The same fields as JSON, as one readable line: `ts level logger [event] msg key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        data = self.fields(record)
        for key in (*self.identity, *self.lifecycle):
            data.pop(key, None)
        head = [data.pop("ts"), f"{data.pop('level').upper():<7}", data.pop("logger")]
        if "event" in data:
            head.append(f"[{data.pop('event')}]")
        head.append(str(data.pop("msg")))
        tail = [
            f"{key}={_dumps(value) if not isinstance(value, str) else value}"
            for key, value in data.items()
        ]
        return " ".join(head + tail).replace("\n", "\\n")


def _timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-01-31T12:00:00.123Z."""
    seconds = int(created)
    return f"{_whole_second(seconds)}.{int((created - seconds) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)  # records come in bursts: format each second once
def _whole_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - msg % args failed (or a __str__ raised): keep the record
        return f"{_text(record.msg)} (bad log args: {_text(record.args)})"


def _summary(exc: BaseException) -> str:
    text = _text(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _type_name(kind: type) -> str:
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _text(value: object) -> str:
    """str(value), and never an exception: a log call must not fail on a strange value."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - any __str__ may raise; the record matters more
        return f"<unprintable {type(value).__name__}>"


def _dumps(data: object) -> str:
    try:
        return _ENCODER.encode(data)
    except (ValueError, TypeError, RecursionError):  # nan, circular data, odd keys: degrade per key
        if not isinstance(data, dict):  # one value (a text-format field)
            return _text(data)
        return _ENCODER.encode({str(k): _plain(v) for k, v in data.items()})


def _plain(value: object) -> object:
    if isinstance(value, _PLAIN) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return _text(value)


def configure_logging(
    config: Config, *, run_id: str, lifecycle: Mapping[str, object] | None = None
) -> logging.Handler:
    """Send every logger, warning and uncaught exception to stdout in `config.log_format`."""
    identity = {
        "service": config.service_name,
        "instance": config.instance,
        "env": config.env,
        "run_id": run_id,
    }
    lifecycle = {"version": config.version, "commit": config.commit, **(lifecycle or {})}
    kind = JsonFormatter if config.log_format == "json" else TextFormatter
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(kind(identity, lifecycle))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable
    return handler


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    log.critical(
        "uncaught exception",
        exc_info=(kind, exc, tb),
        extra={"event": "crashed", "reason": "uncaught"},
    )


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # as the default hook: a thread may end itself quietly
        return
    thread = args.thread.name if args.thread else "unknown"
    exc = args.exc_value or args.exc_type()
    log.error(
        "exception in thread %s",
        thread,
        exc_info=(args.exc_type, exc, args.exc_traceback),
        extra={"event": "unhandled_exception", "thread_name": thread},
    )


def _log_unraisable(args: Any) -> None:
    exc = args.exc_value or args.exc_type()
    log.error(
        "unraisable exception in %s",
        _text(args.object),
        exc_info=(args.exc_type, exc, args.exc_traceback),
        extra={"event": "unhandled_exception", "where": args.err_msg or "unraisable"},
    )


def log_asyncio_exception(loop: object, context: dict[str, Any]) -> None:
    """An asyncio loop exception handler: task errors nobody awaited, callback errors."""
    exc = context.get("exception")
    log.error(
        context.get("message") or "asyncio error",
        exc_info=(type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None,
        extra={"event": "unhandled_exception", "where": "asyncio"},
    )


def write_now(level: int, msg: str, **extra: Any) -> None:
    """Format a record and write it straight to stdout's file descriptor.

    For signal handlers and watchdog threads that end the process: they cannot take the
    handler's lock (the thread they interrupted may hold it) and there is no later flush.
    """
    handler = next(
        (h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)), None
    )
    formatter = handler.formatter if handler and handler.formatter else JsonFormatter({}, {})
    record = log.makeRecord(log.name, level, __file__, 0, msg, (), None, extra=extra)
    data = (formatter.format(record) + "\n").encode()
    stream = handler.stream if handler else sys.stdout
    try:
        stream.flush()  # what the interrupted thread already wrote goes first
        fd = stream.fileno()
    except (OSError, RuntimeError, ValueError, AttributeError):  # reentrant flush, or no real fd
        fd = 1
    while data:
        data = data[os.write(fd, data) :]
