"""Floor of an async service: a bare asyncio loop that stops on SIGTERM/SIGINT.

Usage: floor_async.py SLEEP_SECONDS [count]

Prints `ready` once the loop runs, then loops: one step, then a wait of SLEEP_SECONDS that a
signal ends at once (0: just yield to the loop). `count`: prints `count ITERATIONS SECONDS`
when stopped (B5).
"""

import asyncio
import signal
import sys
import time
from contextlib import suppress


async def main(sleep_seconds: float, count: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    iterations = 0
    started = time.perf_counter()
    while not stop.is_set():
        iterations += 1
        if sleep_seconds > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sleep_seconds)
        else:
            await asyncio.sleep(0)
    if count:
        print("count", iterations, time.perf_counter() - started, flush=True)


asyncio.run(main(float(sys.argv[1]), "count" in sys.argv[2:]))
