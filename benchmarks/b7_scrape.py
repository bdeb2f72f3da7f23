"""B7: GET /metrics latency and throughput with 4 clients, while the service's loop runs."""

from __future__ import annotations

import threading
import time

from benchmarks.core import BenchError, Figure, Plan, interleave, median, percentile
from benchmarks.procs import (
    BASELINES,
    COMMAND,
    PYTHON,
    http_get,
    prefer,
    running,
    service_env,
    workspace,
)

CLIENTS = 4
LOOP_SLEEP_SECONDS = 0.1  # the example service logs and records 10 iterations a second
MODEL = prefer("sync")  # both models serve /metrics with the same server
SUBJECT = f"app-{MODEL} /metrics"


def measure(plan: Plan) -> list[Figure]:
    with workspace() as tmp:
        env = service_env(tmp / "heartbeat.json", LOOP_SLEEP_SECONDS)
        floor_argv = [PYTHON, str(BASELINES / "prom_floor.py"), str(LOOP_SLEEP_SECONDS), "similar"]
        with (
            running([COMMAND[MODEL]], env, tmp) as service,
            running(floor_argv, env, tmp) as floor,
        ):
            port = int(service.wait_event("metrics_listening")[1]["port"])
            service.wait_event("startup_success")
            floor_port = int(floor.wait_ready_line()[1][0])
            sizes = {"template": len(http_get(port)), "floor": len(http_get(floor_port))}
            rounds = interleave(
                {
                    "template": lambda: _scrape(port, plan.scrape_requests),
                    "floor": lambda: _scrape(floor_port, plan.scrape_requests),
                },
                plan.scrape_rounds,
                plan.warmup,
            )
    # Per round: median latency, p99 latency, requests per second; then medians of rounds.
    stats = {
        name: {
            "median": median([median(lat) for lat, _ in runs]) * 1000,
            "p99": median([percentile(lat, 0.99) for lat, _ in runs]) * 1000,
            "rate": median([rate for _, rate in runs]),
        }
        for name, runs in rounds.items()
    }
    sub, base = stats["template"], stats["floor"]
    floor_name = "prometheus_client.start_http_server"
    details = {"body_bytes": sizes, "requests_per_round": CLIENTS * plan.scrape_requests}
    return [
        Figure(
            "B7",
            "scrape latency, median",
            SUBJECT,
            floor_name,
            "ms",
            sub["median"],
            base["median"],
            budget=1.1,
            details=details,
        ),
        Figure(
            "B7",
            "scrape latency, p99",
            SUBJECT,
            floor_name,
            "ms",
            sub["p99"],
            base["p99"],
            budget=1.1,
        ),
        Figure(
            "B7",
            f"scrape throughput, {CLIENTS} clients",
            SUBJECT,
            floor_name,
            "req/s",
            sub["rate"],
            base["rate"],
            budget=0.9,
            higher_is_better=True,
        ),
    ]


def _scrape(port: int, requests: int) -> tuple[list[float], float]:
    """`CLIENTS` threads each GET /metrics `requests` times; latencies and requests/s."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[Exception] = []

    def client() -> None:
        mine = []
        try:
            for _ in range(requests):
                started = time.perf_counter()
                http_get(port)
                mine.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - reported from the main thread below
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchError(f"GET /metrics on port {port} failed: {errors[0]}")
    return latencies, len(latencies) / elapsed
