"""Subprocesses: start them with a clean environment, time them, and always kill them."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmarks.core import BenchError

PYTHON = sys.executable
BIN = Path(sys.executable).parent  # the venv's console scripts: the installed subjects
HERE = Path(__file__).resolve().parent
BASELINES = HERE / "baselines"
# The models this copy has. Files of one model carry its name (noop_async.py,
# baselines/floor_async.py), so deleting a model deletes them; its figures are then left out.
MODELS = [
    model
    for model, module in (("sync", "app.main_sync"), ("async", "app.main_async"))
    if importlib.util.find_spec(module)
]
COMMAND = {model: str(BIN / f"app-{model}") for model in MODELS}  # app-sync, app-async
NOOP = {model: HERE / f"noop_{model}.py" for model in MODELS}
# The floor loop of each model: B3 stops it in a busy loop, B5 counts its iterations.
LOOP_FLOOR = {"sync": BASELINES / "prom_floor.py", "async": BASELINES / "floor_async.py"}
START_TIMEOUT_SECONDS = 20.0  # generous: the machine may be busy with other test suites
EXIT_TIMEOUT_SECONDS = 10.0  # a stop that takes longer is counted as a hang

_live: set[subprocess.Popen[bytes]] = set()


def prefer(model: str) -> str:
    """`model` if this copy has it, else the model it kept: for a figure that needs one
    running service of either model (B1, B7)."""
    return model if model in MODELS else MODELS[0]


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without APP_* (settings) and PYTHON* (interpreter tweaks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "PYTHON", "COVERAGE"))}
    return env | extra


def service_env(heartbeat: Path, loop_sleep_seconds: float, **extra: str) -> dict[str, str]:
    """The service as the Docker image runs it, on loopback and any free port.

    The image sets APP_HEARTBEAT_FILE, APP_VERSION and APP_COMMIT, so a deployed service
    never looks them up; the port is logged in `metrics_listening`.
    """
    return base_env(
        APP_METRICS_HOST="127.0.0.1",
        APP_METRICS_PORT="0",
        APP_HEARTBEAT_FILE=str(heartbeat),
        APP_LOOP_SLEEP_SECONDS=str(loop_sleep_seconds),
        APP_VERSION="0.1.0",
        APP_COMMIT="0123456789abcdef0123456789abcdef01234567",
        **extra,
    )


@contextmanager
def workspace() -> Iterator[Path]:
    """A temporary working directory: no config.yml or .env of the repository is read."""
    with tempfile.TemporaryDirectory(prefix="bench-") as path:
        yield Path(path)


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _live.add(proc)
    return proc


def _stdout(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    if proc.stdout is None:  # spawn() always makes a pipe; this is for the type checker
        raise BenchError(f"{proc.args!r} has no stdout pipe")
    return proc.stdout


def kill_all() -> None:
    """Kill every process still running; called when the run ends, however it ends."""
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _live.discard(proc)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Block until `proc` exits (True) or `timeout` passes (False), without polling.

    Popen.wait(timeout) polls with sleeps of up to 50 ms, too coarse for millisecond
    figures; a pidfd becomes readable the moment the process exits.
    """
    fd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        return False
    proc.wait()
    _live.discard(proc)
    return True


def run_timed(
    argv: list[str], env: dict[str, str], cwd: Path, expect: int = 0
) -> tuple[float, bytes]:
    """Wall time from exec to exit of a short command; its output; raises on a bad status."""
    started = time.perf_counter()
    proc = spawn(argv, env, cwd)
    if not wait_exit(proc, EXIT_TIMEOUT_SECONDS):
        proc.kill()
        raise BenchError(f"{argv[-1]} did not exit within {EXIT_TIMEOUT_SECONDS} s")
    elapsed = time.perf_counter() - started
    with _stdout(proc) as stdout:
        output = stdout.read()
    if proc.returncode != expect:
        raise BenchError(f"{argv} exited {proc.returncode}: {output[-500:]!r}")
    return elapsed, output


class Running:
    """A long-lived process whose output lines are read (and time-stamped) by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.argv = argv
        self.started = time.perf_counter()
        self.proc = spawn(argv, env, cwd)
        self.lines: list[tuple[float, str]] = []  # (perf_counter when read, line)
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in _stdout(self.proc):
            with self._changed:
                self.lines.append((time.perf_counter(), raw.decode(errors="replace")))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_line(
        self, match: Callable[[str], bool], timeout: float = START_TIMEOUT_SECONDS
    ) -> tuple[float, str]:
        """The first line that `match`es, with the time it was read; raises if none comes."""

        def found() -> tuple[float, str] | None:
            return next(((t, line) for t, line in self.lines if match(line)), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._eof, timeout)
            hit = found()
        if hit is None:
            tail = "".join(line for _, line in self.lines[-5:])
            raise BenchError(f"{Path(self.argv[-1]).name}: expected line not seen: {tail!r}")
        return hit

    def wait_event(self, event: str) -> tuple[float, dict[str, Any]]:
        """Seconds from exec to the JSON log record with this `event`, and the record."""
        at, line = self.wait_line(lambda line: f'"event":"{event}"' in line.replace(" ", ""))
        return at - self.started, json.loads(line)

    def wait_ready_line(self) -> tuple[float, list[str]]:
        """For the baselines, which print `ready [port]` when they are."""
        at, line = self.wait_line(lambda line: line.startswith("ready"))
        return at - self.started, line.split()[1:]

    def events(self, event: str) -> int:
        return sum(f'"event":"{event}"' in line.replace(" ", "") for _, line in self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> float | None:
        """Seconds from the signal to the exit, or None on a hang (then the process is killed)."""
        sent = time.perf_counter()
        self.proc.send_signal(sig)
        if not wait_exit(self.proc, EXIT_TIMEOUT_SECONDS):
            self.close()
            return None
        elapsed = time.perf_counter() - sent
        self._reader.join(timeout=5)
        return elapsed

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        _live.discard(self.proc)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def running(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[Running]:
    proc = Running(argv, env, cwd)
    try:
        yield proc
    finally:
        proc.close()


def http_get(port: int, path: str = "/metrics", timeout: float = 10.0) -> bytes:
    """GET on loopback; a new connection each time, as the servers close it after a reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"GET {path} on port {port}: HTTP {response.status}")
    return body


def read_heartbeat(path: Path) -> dict[str, Any]:
    """The heartbeat as JSON; the service replaces it atomically, so a read is never torn."""
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def rss_mib(pid: int) -> float:
    """Resident set size from /proc (VmRSS, in KiB), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")
