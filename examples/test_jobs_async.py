"""The concurrent-jobs recipe against real local TCP listeners, in-process and as a process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from jobs_async import PortChecks, parse_target

from app.config import Config

EXAMPLE = Path(__file__).with_name("jobs_async.py")
S = TypeVar("S", bound=PortChecks)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The developer's CHECK_* variables do not leak in; records reach caplog."""
    for name in ("CHECK_TARGETS", "CHECK_CONCURRENCY", "CHECK_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO)


def closed_port() -> int:
    """A port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port whose connects never complete: Linux drops SYNs while the accept queue is full."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = int(server.getsockname()[1])
    fillers = [socket.socket() for _ in range(4)]
    for sock in fillers:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
    yield port
    for sock in [*fillers, server]:
        sock.close()


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def make(cls: type[S], **config: Any) -> S:
    values: dict[str, Any] = {"metrics_enabled": False, "loop_sleep_seconds": 0}
    return cls(Config(**(values | config)))


async def start(service: PortChecks, *, once: bool = True) -> int:
    try:
        return await service.start(once=once)
    finally:
        service.lifecycle.latch.close()


def count(service: PortChecks, outcome: str) -> float | None:
    return service.metrics.registry.get_sample_value("app_checks_total", {"outcome": outcome})


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.__dict__.get("event") == name]


def test_a_failed_check_is_logged_and_counted_and_the_iteration_succeeds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    accepted: list[int] = []  # the listening port of each connection the servers saw
    refused = closed_port()

    async def scenario() -> tuple[PortChecks, list[int]]:
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer.get_extra_info("sockname")[1])
            writer.close()

        async with (
            await asyncio.start_server(accept, "127.0.0.1", 0) as one,
            await asyncio.start_server(accept, "127.0.0.1", 0) as two,
        ):
            ports = [s.sockets[0].getsockname()[1] for s in (one, two)]
            targets = [f"127.0.0.1:{p}" for p in (ports[0], refused, ports[1], ports[0])]
            monkeypatch.setenv("CHECK_TARGETS", ",".join(targets))
            service = make(PortChecks)
            assert await start(service) == 0  # --once: the iteration succeeded
            await wait_until(lambda: len(accepted) == 3)
            return service, ports

    service, ports = asyncio.run(scenario())

    assert sorted(accepted) == sorted([ports[0], ports[0], ports[1]])
    assert service.lifecycle.state.failures == 0
    assert (count(service, "ok"), count(service, "failed")) == (3.0, 1.0)
    failed = events(caplog, "check_failed")
    assert [r["target"] for r in failed] == [f"127.0.0.1:{refused}"]
    assert failed[0]["error"].startswith("ConnectionRefusedError")


class Measured(PortChecks):
    """Counts the checks running at the same moment."""

    running = peak = 0

    async def check(self, host: str, port: int) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await super().check(host, port)
        finally:
            self.running -= 1


def test_concurrency_never_exceeds_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> Measured:
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        async with await asyncio.start_server(accept, "127.0.0.1", 0) as server:
            target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
            monkeypatch.setenv("CHECK_TARGETS", ",".join([target] * 12))
            monkeypatch.setenv("CHECK_CONCURRENCY", "3")
            service = make(Measured)
            assert await start(service) == 0
            return service

    service = asyncio.run(scenario())

    assert service.peak == 3  # the bound is reached, never passed
    assert count(service, "ok") == 12.0


class Cancelled(PortChecks):
    """Records checks that start and checks that are cancelled."""

    started = cancelled = 0

    async def check(self, host: str, port: int) -> None:
        self.started += 1
        try:
            await super().check(host, port)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_a_stop_cancels_checks_in_flight_without_counting_them_as_failed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, hanging_port: int
) -> None:
    monkeypatch.setenv("CHECK_TARGETS", ",".join([f"127.0.0.1:{hanging_port}"] * 5))
    monkeypatch.setenv("CHECK_CONCURRENCY", "2")
    monkeypatch.setenv("CHECK_TIMEOUT_SECONDS", "30")
    service = make(Cancelled, shutdown_timeout_seconds=0.1)

    async def scenario() -> int:
        task = asyncio.create_task(start(service, once=False))
        await wait_until(lambda: service.started == 2)
        service.stop("test")  # as SIGTERM does: the iteration is cancelled after 0.1 s
        async with asyncio.timeout(5):
            return await task

    assert asyncio.run(scenario()) == 0
    assert (service.started, service.cancelled) == (2, 2)  # the other 3 never started
    assert (count(service, "ok"), count(service, "failed")) == (0.0, 0.0)
    assert events(caplog, "check_failed") == []


@pytest.mark.parametrize("item", ["localhost", "localhost:", ":80", "host:0", "h:70000", "h:x"])
def test_a_bad_target_is_rejected_by_name(item: str) -> None:
    with pytest.raises(ValueError, match="bad check target"):
        parse_target(item)


def test_targets_may_be_ipv6_in_brackets() -> None:
    assert parse_target(" [::1]:8080 ") == ("::1", 8080)


def test_once_as_a_real_process(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel completes connects
        up, down = listener.getsockname()[1], closed_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env |= {
            "APP_METRICS_ENABLED": "false",
            "APP_HEARTBEAT_FILE": str(tmp_path / "heartbeat.json"),
            "CHECK_TARGETS": f"127.0.0.1:{up},127.0.0.1:{down}",
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
    failed = [r for r in records if r.get("event") == "check_failed"]
    assert [(r["level"], r["target"]) for r in failed] == [("warning", f"127.0.0.1:{down}")]
    assert records[-1]["event"] == "shutdown_complete"
    assert records[-1]["failures"] == 0
