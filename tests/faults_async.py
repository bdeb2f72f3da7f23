"""An `AsyncService` that misbehaves on purpose, run as a real process: `faults_async.py FAULT`.

See tests/faults.py for the FAULT names and the variables that time the phases.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from faults import fail_every, marker, queue_depth, raise_in_thread, seconds, stop_after
from prometheus_client import Gauge

from app.main_async import run
from app.service_async import AsyncService


class AsyncFaults(AsyncService):
    fault = "ok"

    async def setup(self) -> None:
        if self.fault == "raise_setup":
            raise RuntimeError("setup failed on purpose")
        if self.fault == "phases":
            marker("setup_begin")
            await asyncio.sleep(seconds("FAULT_SETUP_SECONDS"))
        if self.fault == "bad_metric":  # a user's metric whose callback fails at every scrape
            gauge = Gauge("app_queue_depth", "Jobs waiting", registry=self.metrics.registry)
            gauge.set_function(queue_depth)

    async def run_iteration(self) -> None:
        count = self.lifecycle.state.iterations + 1
        if self.fault == "phases":
            marker("iteration_begin", count=count)
            await asyncio.sleep(seconds("FAULT_ITERATION_SECONDS"))
            marker("iteration_end", count=count)
            if count == stop_after():
                self.stop("done")
        if self.fault == "raise_always":
            raise ValueError("always failing")
        if self.fault == "raise_odd":
            fail_every(2, count + 1)
        if self.fault == "hang":
            marker("iteration_begin", count=count)
            await asyncio.sleep(3600)
        if self.fault == "block_loop":
            time.sleep(3600)  # a blocking call in a coroutine: the whole loop stops
        if self.fault == "orphan_task" and count == 1:
            asyncio.get_running_loop().create_task(_raise_async())
            await asyncio.sleep(0.05)
        if self.fault == "slow_iteration":
            marker("iteration_begin", count=count)
            await asyncio.sleep(seconds("FAULT_SECONDS", "1"))
        if self.fault == "thread_error" and count == 1:
            thread = threading.Thread(target=raise_in_thread, name="worker-1")
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
            marker("teardown_begin")
            await asyncio.sleep(seconds("FAULT_SECONDS", "30"))
        if self.fault == "phases":
            marker("teardown_begin")
            await asyncio.sleep(seconds("FAULT_TEARDOWN_SECONDS"))


async def _raise_async() -> None:
    raise KeyError("task nobody awaited failed on purpose")


def main(argv: list[str]) -> int:
    fault, *rest = argv
    AsyncFaults.fault = fault
    return run(AsyncFaults, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
