"""Floor of a sync service: a prometheus_client server and a loop on the signal wake-up fd.

Usage: prom_floor.py SLEEP_SECONDS [asyncio] [similar] [count]

- prints `ready PORT` once /metrics is served (B2), then loops: one counter increment, then
  a wait of SLEEP_SECONDS on the wake-up fd that SIGTERM/SIGINT end at once (B3, B4, B5);
- `asyncio`: also imports asyncio (the B2 floor of the async model);
- `similar`: serves its own registry with metrics like the template's (B7);
- `count`: prints `count ITERATIONS SECONDS` when stopped (B5).

It reads sys.argv by hand: argparse would add its import time to the floor.
"""

import select
import signal
import socket
import sys
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server

sleep_seconds = float(sys.argv[1])
flags = set(sys.argv[2:])
if "asyncio" in flags:
    import asyncio  # noqa: F401 - its import time is the point

registry = REGISTRY  # the default one already carries the process, platform and GC collectors
if "similar" in flags:
    # The same families as app.metrics.Metrics, on a registry of its own.
    from prometheus_client import (
        Gauge,
        GCCollector,
        Histogram,
        Info,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Gauge("app_up", "Up", registry=registry).set(1)
    Info("app_build", "Build", registry=registry).info({"version": "0", "commit": "x"})
    Counter("app_iteration_failures", "Failures", registry=registry)
    Gauge("app_last_iteration_timestamp_seconds", "Last", registry=registry).set(1)
    Gauge("app_last_success_timestamp_seconds", "Success", registry=registry).set(1)
    buckets = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
    Histogram("app_iteration_duration_seconds", "Duration", buckets=buckets, registry=registry)
counter = Counter("app_iterations", "Iterations", registry=registry)

stopping = False


def handle(signum: int, frame: object) -> None:
    global stopping
    stopping = True


reader, writer = socket.socketpair()
reader.setblocking(False)
writer.setblocking(False)
signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
signal.signal(signal.SIGTERM, handle)
signal.signal(signal.SIGINT, handle)

server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
print("ready", server.server_port, flush=True)
iterations = 0
started = time.perf_counter()
while not stopping:
    counter.inc()
    iterations += 1
    if sleep_seconds > 0:
        select.select([reader], [], [], sleep_seconds)
if "count" in flags:
    print("count", iterations, time.perf_counter() - started, flush=True)
