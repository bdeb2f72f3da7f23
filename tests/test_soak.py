"""Soak: a million no-op iterations per model with metrics and heartbeat on, and no leak.

A no-op service loops with no sleep while /metrics is scraped again and again. After
WARMUP_ITERATIONS (and some scrapes) the process's resident memory, open file descriptors
and threads are read from /proc; after SOAK_ITERATIONS more they are read again: memory may
grow less than MAX_RSS_GROWTH_KB (1 MB), descriptors and threads not at all. Run with `-s`
to see the figures. Sized by iterations (read from /metrics), not by time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MODELS, Running, fault, wait_until

WARMUP_ITERATIONS = 100_000
SOAK_ITERATIONS = 2_000_000  # after the warm-up; a leak of 1 byte each would show as 2 MB
MIN_SCRAPES = 100  # after the warm-up: a scrape must not leak either
MAX_RSS_GROWTH_KB = 1024
SCRAPE_INTERVAL_SECONDS = 0.01

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc"),
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def iterations(proc: Running) -> int:
    """Scrape /metrics (that is the point: scrapes must not leak) and read the count."""
    status, body = proc.get("/metrics")
    assert status == 200
    line = next(line for line in body.splitlines() if line.startswith("app_iterations_total "))
    return int(float(line.split()[1]))


@pytest.mark.parametrize("model", MODELS)
def test_a_million_iterations_leak_no_memory_descriptors_or_threads(
    start: Callable[..., Running], model: str
) -> None:
    proc = start(fault(model, "ok"), APP_LOOP_SLEEP_SECONDS="0")
    pid = proc.proc.pid
    proc.wait_for_event("startup_success")
    # Two threads when quiet: the loop's and the metrics server's. A scrape adds one for
    # its connection, which ends with it: waiting for 2 also waits out the last scrape.
    quiet = 2

    wait_until(lambda: iterations(proc) >= WARMUP_ITERATIONS, 120, SCRAPE_INTERVAL_SECONDS)
    wait_until(lambda: threads(pid) == quiet)
    before = {"rss_kb": rss_kb(pid), "fds": fds(pid), "threads": threads(pid)}
    first = iterations(proc)

    scrapes = 0

    def soaked() -> bool:
        nonlocal scrapes
        scrapes += 1
        return iterations(proc) >= first + SOAK_ITERATIONS and scrapes >= MIN_SCRAPES

    wait_until(soaked, 300, SCRAPE_INTERVAL_SECONDS)
    wait_until(lambda: threads(pid) == quiet)
    after = {"rss_kb": rss_kb(pid), "fds": fds(pid), "threads": threads(pid)}
    done = iterations(proc) - first

    print(
        f"\n{model}: {done} iterations after a warm-up of {first}, {scrapes} scrapes; "
        f"RSS {before['rss_kb']} -> {after['rss_kb']} kB "
        f"({after['rss_kb'] - before['rss_kb']:+d} kB), fds {before['fds']} -> {after['fds']}, "
        f"threads {before['threads']} -> {after['threads']}"
    )
    assert after["rss_kb"] - before["rss_kb"] < MAX_RSS_GROWTH_KB
    assert after["fds"] <= before["fds"]
    assert after["threads"] <= before["threads"]

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert proc.stderr == ""
    assert proc.events("shutdown_complete")[0]["iterations"] >= first + SOAK_ITERATIONS
