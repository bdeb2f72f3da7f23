"""`app-health`: exit 0 if the service's heartbeat is fresh (alive, or with --ready, ready), else 1.

Docker and Kubernetes run this every few seconds, so its normal path imports only the
standard library. It prints one line of JSON and never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time

TYPE_CHECKING = False  # `typing` costs 3 ms to import; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

USAGE = """\
usage: app-health [--file PATH] [--max-age SECONDS] [--ready] [--help]

Check the service's heartbeat file; print one JSON line; exit 0 healthy, 1 unhealthy.

  --file PATH        heartbeat file (default: as the service finds it: APP_HEARTBEAT_FILE,
                     .env, YAML config, or the default in the temp dir)
  --max-age SECONDS  allowed age (default: max_age_seconds written by the service)
  --ready            also require status "running", a successful iteration within max age
                     and the service's readiness checks passing (each listed in "checks")
  --help             show this help
"""
# The service and this check read one host's clock, so a heartbeat from the future means
# the clock was stepped back: the timestamps can no longer prove anything, so it fails.
FUTURE_TOLERANCE_SECONDS = 2.0
MAX_FILE_BYTES = 1 << 20
IDENTITY = ("service", "env", "version", "commit", "run_id", "config_hash")
STATUSES = ("starting", "running", "stopping")


class UsageError(Exception):
    """Bad command line."""


class Unhealthy(Exception):
    """The heartbeat file is missing, unreadable or malformed; the message says which."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(USAGE, end="")
        return 0
    started = time.perf_counter()
    beat: dict[str, Any] = {}
    try:
        path, max_age, ready = _parse(args)
        path = path or _find_heartbeat_file()
        beat = _read(path)
        checks = [_heartbeat_check(beat, path, max_age, time.time())]
        if ready:
            checks.append(_ready_check(beat, max_age or beat["max_age_seconds"], time.time()))
            checks += _dependency_checks(beat.get("checks", []))
    except (UsageError, Unhealthy) as exc:
        checks = [
            {"name": "usage" if isinstance(exc, UsageError) else "heartbeat", "status": "fail"}
        ]
        checks[0]["reason"] = str(exc)
    latency = round((time.perf_counter() - started) * 1000, 3)
    for check in checks:
        check.setdefault("latency_ms", latency)  # the service's checks bring their own
    ok = all(check["status"] == "ok" for check in checks)
    report: dict[str, Any] = {"status": "ok" if ok else "fail"}
    report |= {key: beat.get(key) if isinstance(beat.get(key), str) else None for key in IDENTITY}
    report |= {"timestamp": _iso(time.time()), "checks": checks}
    print(json.dumps(report))
    return 0 if ok else 1


def _parse(args: list[str]) -> tuple[str | None, float | None, bool]:
    path: str | None = None
    max_age: float | None = None
    ready = False
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--ready":
            ready = True
            continue
        if name not in ("--file", "--max-age"):
            raise UsageError(f"unknown argument {arg!r}; see --help")
        if not eq:
            if not rest:
                raise UsageError(f"{name} needs a value; see --help")
            value = rest.pop(0)
        if name == "--file":
            path = value
        else:
            max_age = _positive(value)
    return path, max_age, ready


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"--max-age expects a number of seconds > 0, got {text!r}")
    return value


def _find_heartbeat_file() -> str:
    """The path the service writes to: APP_HEARTBEAT_FILE, else the full config lookup."""
    path = os.environ.get("APP_HEARTBEAT_FILE")
    if path:
        return path
    # Off the fast path: read .env / YAML / defaults exactly as the service does.
    from app.config import ConfigError, load_config

    try:
        return str(load_config().config.heartbeat_file)
    except ConfigError as exc:
        raise Unhealthy(f"cannot find the heartbeat file, configuration invalid: {exc}") from None


def _read(path: str) -> dict[str, Any]:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (the probe would time out).
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            regular = stat.S_ISREG(os.fstat(file.fileno()).st_mode)
            data = file.read(MAX_FILE_BYTES + 1) if regular else b""
    except FileNotFoundError:
        raise Unhealthy(f"heartbeat file {path} is missing: service not running?") from None
    except OSError as exc:
        raise Unhealthy(f"heartbeat file {path} cannot be read: {exc.strerror or exc}") from None
    if not regular:  # a directory, FIFO or device
        raise Unhealthy(f"heartbeat file {path} cannot be read: not a regular file")
    if len(data) > MAX_FILE_BYTES:
        raise Unhealthy(f"heartbeat file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        beat = json.loads(data)
    except (ValueError, RecursionError):
        raise Unhealthy(f"heartbeat file {path} is not valid JSON") from None
    if not isinstance(beat, dict):
        raise Unhealthy(f"heartbeat file {path} is not a JSON object")
    for key, kinds in (("ts", "number"), ("pid", "pid"), ("max_age_seconds", "number")):
        if not _valid(beat.get(key), kinds):
            raise Unhealthy(f"heartbeat file {path}: {key} is missing or not a valid {kinds}")
    if beat.get("status") not in STATUSES:
        raise Unhealthy(f"heartbeat file {path}: status is not one of {', '.join(STATUSES)}")
    return beat


def _valid(value: object, kind: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "pid":
        return isinstance(value, int) and 0 < value < 1 << 31
    # False for nan and inf too; math.isfinite() would raise OverflowError on a huge int.
    return 0 <= value < 1e12


def _heartbeat_check(
    beat: dict[str, Any], path: str, max_age: float | None, now: float
) -> dict[str, Any]:
    limit = max_age or float(beat["max_age_seconds"])
    age = now - float(beat["ts"])
    check: dict[str, Any] = {"name": "heartbeat", "status": "fail", "path": path}
    check |= {"age_seconds": round(age, 3), "max_age_seconds": limit, "pid": beat["pid"]}
    check["service_status"] = beat["status"]
    if age < -FUTURE_TOLERANCE_SECONDS:
        check["reason"] = f"heartbeat is {-age:.1f}s in the future: clock stepped back?"
    elif age > limit:
        check["reason"] = f"heartbeat is stale: {age:.1f}s old, limit {limit:g}s"
    elif not _process_exists(beat["pid"]):
        check["reason"] = f"process {beat['pid']} that wrote the heartbeat is gone"
    else:
        check["status"] = "ok"
    return check


def _ready_check(beat: dict[str, Any], limit: float, now: float) -> dict[str, Any]:
    check: dict[str, Any] = {"name": "ready", "status": "fail"}
    success = beat.get("last_success_ts")
    if beat["status"] != "running":
        check["reason"] = f"service is {beat['status']}"
    elif not isinstance(success, int | float) or not _valid(success, "number"):
        check["reason"] = "no successful iteration yet"
    elif not -FUTURE_TOLERANCE_SECONDS <= now - success <= limit:
        check["reason"] = f"last success {now - success:.1f}s ago, limit {limit:g}s"
    else:
        check["status"] = "ok"
        check["last_success_age_seconds"] = round(now - success, 3)
    return check


def _dependency_checks(entries: object) -> list[dict[str, Any]]:
    """The service's own readiness checks, as its last heartbeat recorded them."""
    if not isinstance(entries, list) or not all(_valid_entry(entry) for entry in entries):
        return [{"name": "checks", "status": "fail", "reason": "heartbeat checks are malformed"}]
    checks = []
    for entry in entries:
        check = {
            key: entry[key] for key in ("name", "status", "latency_ms", "reason") if key in entry
        }
        checks.append(check)
    return checks


def _valid_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and entry.get("status") in ("ok", "fail")
        and _valid(entry.get("latency_ms"), "number")
        and isinstance(entry.get("reason", ""), str)
    )


def _process_exists(pid: int) -> bool:
    """Whether `pid` is visibly alive in this PID namespace (signal 0 probes, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to another user
        return True
    return True


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


if __name__ == "__main__":
    sys.exit(main())
