"""`app-async`: runs an `AsyncService` with config, logging, metrics, signals and heartbeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from app.runner import run_service
from app.service_async import AsyncService

log = logging.getLogger(__name__)


def run(service_cls: type[AsyncService], argv: Sequence[str] | None = None) -> int:
    """Run `service_cls` as a process: parse argv, load config, loop; return the exit status."""
    return run_service(
        argv,
        prog="app-async",
        build=service_cls,
        start=lambda service, once: asyncio.run(service.start(once=once)),
        event_loop=True,
    )


# --- Example service: replace it with your own, or delete it --------------------------------
class ExampleService(AsyncService):
    """Logs a line per iteration. Write your work in run_iteration()."""

    async def run_iteration(self) -> None:
        log.info("example iteration", extra={"iteration": self.lifecycle.state.iterations + 1})

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        # One per dependency, e.g. {"database": self.ping_database}, a coroutine function.
        return {"example": lambda: asyncio.sleep(0, True)}  # always passes


def main() -> int:
    return run(ExampleService)
