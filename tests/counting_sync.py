"""The sync half of test_service.py: a `Service` that counts, and `run()` in this process."""

from __future__ import annotations

from typing import Any

from app.config import Config
from app.service_sync import Service


class Counting(Service):
    """Stops itself after `limit` iterations; fails the iterations listed in `failing`.

    Its teardown raises `teardown_error` if one is set.
    """

    limit = 3
    failing: tuple[int, ...] = ()
    teardown_error: Exception | None = None  # raised by teardown()

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")

    def run_iteration(self) -> None:
        n = self.lifecycle.state.iterations + 1
        self.calls.append(f"iteration {n}")
        if n >= self.limit:
            self.stop("done")
        if n in self.failing:
            raise RuntimeError(f"iteration {n} failed")

    def teardown(self) -> None:
        self.calls.append("teardown")
        if self.teardown_error is not None:
            raise self.teardown_error


def run(service: Service, once: bool = False) -> int:
    try:
        return service.start(once=once)
    finally:
        service.lifecycle.latch.close()
