"""Recipe: an asyncio worker that runs many I/O jobs at once, here TCP connect checks.

Run: CHECK_TARGETS=localhost:8000,example.com:443 python3 dev.py python examples/jobs_async.py

Each iteration connects to every `host:port` in CHECK_TARGETS (comma-separated; default as in
the Run line: the metrics port and a web site), CHECK_CONCURRENCY (default 10) at a time, each
within CHECK_TIMEOUT_SECONDS (default 3). A failed check is one `check_failed` record and one
app_checks_total{outcome="failed"}; it fails neither the other checks nor the iteration.
`check()` is the job: replace it with yours.
"""

from __future__ import annotations

import asyncio
import logging
import os

from prometheus_client import Counter

from app.main_async import run
from app.service_async import AsyncService

log = logging.getLogger(__name__)


class PortChecks(AsyncService):
    async def setup(self) -> None:
        # In your own service these are Config fields (read from APP_*, validated); the
        # template's Config is closed, so the recipe reads its own. A bad value fails setup.
        raw = os.environ.get("CHECK_TARGETS", "localhost:8000,example.com:443")
        self.targets = [parse_target(item) for item in raw.split(",") if item.strip()]
        self.concurrency = int(os.environ.get("CHECK_CONCURRENCY", "10"))
        self.timeout_seconds = float(os.environ.get("CHECK_TIMEOUT_SECONDS", "3"))
        self.checks = Counter(
            "app_checks_total", "TCP checks by outcome", ["outcome"], registry=self.metrics.registry
        )
        for outcome in ("ok", "failed"):  # export both series from the start, at 0
            self.checks.labels(outcome=outcome)

    async def run_iteration(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)  # at most this many checks at once

        async def job(host: str, port: int) -> None:
            async with gate:
                if not self.stopping:  # after a stop request, start no new check
                    await self.check(host, port)

        async with asyncio.TaskGroup() as group:  # waits for all; a raising job cancels the rest
            for host, port in self.targets:
                group.create_task(job(host, port))

    async def check(self, host: str, port: int) -> None:
        """One job: open a TCP connection and close it. A failure is logged and counted."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()  # at once: a cancel cannot come between connect and close
                await writer.wait_closed()
        except OSError as exc:  # refused, unreachable, DNS, timeout; so never CancelledError
            self.checks.labels(outcome="failed").inc()
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                "check failed",
                extra={"event": "check_failed", "target": f"{host}:{port}", "error": error},
            )
        else:
            self.checks.labels(outcome="ok").inc()


def parse_target(item: str) -> tuple[str, int]:
    """`host:port` or `[v6 address]:port` -> (host, port); ValueError if malformed."""
    host, _, port = item.strip().rpartition(":")
    if not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(f"bad check target {item!r}: expected host:port")
    return host.strip("[]"), int(port)


if __name__ == "__main__":
    raise SystemExit(run(PortChecks))
