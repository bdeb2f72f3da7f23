"""Shared fixtures: a clean logging/env state per test, and a driver for the real commands.

Also which execution models this copy has. Files used by one model carry `_sync` or `_async`
in their names (`test_service_async.py`, `faults_sync.py`), so deleting a model is deleting
those files; the shared tests run for each model in MODELS.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent  # the console scripts live beside the interpreter
TESTS = Path(__file__).resolve().parent

# The models whose entry point is still there: "sync" (app-sync), "async" (app-async).
MODELS = [
    model
    for model, module in (("sync", "app.main_sync"), ("async", "app.main_async"))
    if importlib.util.find_spec(module)
]
COMMANDS = [f"app-{model}" for model in MODELS]


def prefer(model: str) -> str:
    """`model` if this copy has it, else the model it kept: for a test of shared plumbing
    that needs one running service, not each."""
    return model if model in MODELS else MODELS[0]


def fault(model: str, name: str) -> list[str]:
    """The argv of a service that misbehaves on purpose (tests/faults_MODEL.py, FAULT name)."""
    return [sys.executable, str(TESTS / f"faults_{model}.py"), name]


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Poll `predicate` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests configure logging and hooks; put the process back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
    logging.captureWarnings(False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No APP_* variable, config.yml or .env of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a service subprocess: loopback, any free port, heartbeat in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env |= {
        "APP_METRICS_HOST": "127.0.0.1",
        "APP_METRICS_PORT": "0",
        "APP_HEARTBEAT_FILE": str(tmp_path / "heartbeat.json"),
        "APP_LOOP_SLEEP_SECONDS": "0.05",
        "PYTHONUNBUFFERED": "1",
    }
    return env


class Running:
    """A service started as a real process; its stdout is read line by line as JSON."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == name]

    def wait_for_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        wait_until(lambda: self.events(name) or self.proc.poll() is not None, timeout)
        found = self.events(name)
        if not found:
            self.wait(timeout=5)
            pytest.fail(f"process exited {self.proc.returncode} before {name!r}: {self.lines}")
        return found[0]

    @property
    def port(self) -> int:
        return int(self.wait_for_event("metrics_listening")["port"])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for exit; return the status with all output read."""
        status = self.proc.wait(timeout=timeout)
        self._close()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        if not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def start(tmp_path: Path, service_env: dict[str, str]) -> Iterator[Callable[..., Running]]:
    """Start a command (e.g. "app-sync", or [python, script]) with `service_env` plus extras."""
    running: list[Running] = []

    def _start(command: str | list[str], *args: str, **env: str) -> Running:
        argv = [str(BIN / command)] if isinstance(command, str) else list(command)
        proc = Running([*argv, *args], {**service_env, **env}, tmp_path)
        running.append(proc)
        return proc

    yield _start
    for proc in running:
        proc.kill()
