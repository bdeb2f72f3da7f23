"""`app-sync`: runs a `Service` with config, logging, metrics, signals and heartbeat wired in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from app.runner import run_service
from app.service_sync import Service

log = logging.getLogger(__name__)


def run(service_cls: type[Service], argv: Sequence[str] | None = None) -> int:
    """Run `service_cls` as a process: parse argv, load config, loop; return the exit status."""
    return run_service(
        argv,
        prog="app-sync",
        build=service_cls,
        start=lambda service, once: service.start(once=once),
    )


# --- Example service: replace it with your own, or delete it --------------------------------
class ExampleService(Service):
    """Logs a line per iteration. Write your work in run_iteration()."""

    def run_iteration(self) -> None:
        log.info("example iteration", extra={"iteration": self.lifecycle.state.iterations + 1})

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        # One per dependency, e.g. {"database": lambda: self.db.execute("SELECT 1")}.
        return {"example": lambda: True}  # always passes


def main() -> int:
    return run(ExampleService)
