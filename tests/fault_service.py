"""Services that misbehave on purpose, run as real processes by the end-to-end tests.

    python tests/fault_service.py sync|async FAULT [app options...]

FAULT names the behaviour: see the `self.fault == ...` branches below. `phases` prints a
JSON marker as each phase begins (setup, iteration, its end, teardown) and sleeps in it:
FAULT_SETUP_SECONDS, FAULT_ITERATION_SECONDS, FAULT_TEARDOWN_SECONDS; with FAULT_STOP_AFTER=N
it stops itself after N iterations.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

from prometheus_client import Gauge

from app import main_async, main_sync
from app.service_async import AsyncService
from app.service_sync import Service


def _marker(name: str, **fields: object) -> None:
    """A JSON line on stdout that tells the test which phase the service is in."""
    print(json.dumps({"marker": name, **fields}), flush=True)


def _seconds(name: str) -> float:
    """A phase duration from the environment (FAULT_SETUP_SECONDS, ...), 0 when unset."""
    return float(os.environ.get(name, "0"))


def _stop_after() -> int:
    """FAULT_STOP_AFTER=N: the service stops itself after N iterations (0: never)."""
    return int(os.environ.get("FAULT_STOP_AFTER", "0"))


def _fail_every(n: int, count: int) -> None:
    """Raise on every n-th iteration, counting from 1."""
    if count % n == 0:
        raise RuntimeError(f"iteration {count} failed on purpose")


class SyncFaults(Service):
    fault = "ok"

    def setup(self) -> None:
        if self.fault == "raise_setup":
            raise RuntimeError("setup failed on purpose")
        if self.fault == "slow_setup":
            time.sleep(float(os.environ.get("FAULT_SECONDS", "1")))
        if self.fault == "phases":
            _marker("setup_begin")
            time.sleep(_seconds("FAULT_SETUP_SECONDS"))
        if self.fault == "bad_metric":  # a user's metric whose callback fails at every scrape
            gauge = Gauge("app_queue_depth", "Jobs waiting", registry=self.metrics.registry)
            gauge.set_function(_queue_depth)

    def run_iteration(self) -> None:
        count = self.lifecycle.state.iterations + 1
        if self.fault == "phases":
            _marker("iteration_begin", count=count)
            time.sleep(_seconds("FAULT_ITERATION_SECONDS"))
            _marker("iteration_end", count=count)
            if count == _stop_after():
                self.stop("done")
        if self.fault == "raise_always":
            raise ValueError("always failing")
        if self.fault == "raise_odd":
            _fail_every(2, count + 1)
        if self.fault == "slow_iteration":
            print(f'{{"marker": "iteration_begin", "count": {count}}}', flush=True)
            time.sleep(float(os.environ.get("FAULT_SECONDS", "1")))
        if self.fault == "stuck":
            time.sleep(3600)
        if self.fault == "thread_error" and count == 1:
            thread = threading.Thread(target=_raise_in_thread, name="worker-1")
            thread.start()
            thread.join()
        if self.fault == "system_exit":
            raise SystemExit(3)
        if self.fault == "keyboard_interrupt":
            raise KeyboardInterrupt

    def teardown(self) -> None:
        if self.fault == "raise_teardown":
            raise RuntimeError("teardown failed on purpose")
        if self.fault == "slow_teardown":
            print('{"marker": "teardown_begin"}', flush=True)
            time.sleep(float(os.environ.get("FAULT_SECONDS", "30")))
        if self.fault == "phases":
            _marker("teardown_begin")
            time.sleep(_seconds("FAULT_TEARDOWN_SECONDS"))


def _queue_depth() -> float:
    raise ConnectionError("queue unreachable on purpose")


def _raise_in_thread() -> None:
    raise LookupError("background thread failed on purpose")


class AsyncFaults(AsyncService):
    fault = "ok"

    async def setup(self) -> None:
        if self.fault == "raise_setup":
            raise RuntimeError("setup failed on purpose")
        if self.fault == "phases":
            _marker("setup_begin")
            await asyncio.sleep(_seconds("FAULT_SETUP_SECONDS"))

    async def run_iteration(self) -> None:
        count = self.lifecycle.state.iterations + 1
        if self.fault == "phases":
            _marker("iteration_begin", count=count)
            await asyncio.sleep(_seconds("FAULT_ITERATION_SECONDS"))
            _marker("iteration_end", count=count)
            if count == _stop_after():
                self.stop("done")
        if self.fault == "raise_always":
            raise ValueError("always failing")
        if self.fault == "hang":
            print(f'{{"marker": "iteration_begin", "count": {count}}}', flush=True)
            await asyncio.sleep(3600)
        if self.fault == "block_loop":
            time.sleep(3600)  # a blocking call in a coroutine: the whole loop stops
        if self.fault == "orphan_task" and count == 1:
            asyncio.get_running_loop().create_task(_raise_async())
            await asyncio.sleep(0.05)
        if self.fault == "slow_iteration":
            print(f'{{"marker": "iteration_begin", "count": {count}}}', flush=True)
            await asyncio.sleep(float(os.environ.get("FAULT_SECONDS", "1")))
        if self.fault == "thread_error" and count == 1:
            thread = threading.Thread(target=_raise_in_thread, name="worker-1")
            thread.start()
            thread.join()  # the thread fails at once: a short block of the loop
        if self.fault == "system_exit":
            raise SystemExit(3)
        if self.fault == "keyboard_interrupt":
            raise KeyboardInterrupt

    async def teardown(self) -> None:
        if self.fault == "raise_teardown":
            raise RuntimeError("teardown failed on purpose")
        if self.fault == "slow_teardown":
            print('{"marker": "teardown_begin"}', flush=True)
            await asyncio.sleep(float(os.environ.get("FAULT_SECONDS", "30")))
        if self.fault == "phases":
            _marker("teardown_begin")
            await asyncio.sleep(_seconds("FAULT_TEARDOWN_SECONDS"))


async def _raise_async() -> None:
    raise KeyError("task nobody awaited failed on purpose")


def main(argv: list[str]) -> int:
    model, fault, *rest = argv
    if model == "sync":
        SyncFaults.fault = fault
        return main_sync.run(SyncFaults, rest)
    AsyncFaults.fault = fault
    return main_async.run(AsyncFaults, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
