"""The asyncio half of test_service.py: an `AsyncService` that counts, and `run()` in this
process (the twin of counting_sync.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.config import Config
from app.service_async import AsyncService


class Counting(AsyncService):
    """Stops itself after `limit` iterations; fails the iterations listed in `failing`.

    Its teardown raises `teardown_error` if one is set.
    """

    limit = 3
    failing: tuple[int, ...] = ()
    teardown_error: Exception | None = None  # raised by teardown()

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.calls: list[str] = []

    async def setup(self) -> None:
        self.calls.append("setup")

    async def run_iteration(self) -> None:
        n = self.lifecycle.state.iterations + 1
        self.calls.append(f"iteration {n}")
        if n >= self.limit:
            self.stop("done")
        if n in self.failing:
            raise RuntimeError(f"iteration {n} failed")

    async def teardown(self) -> None:
        self.calls.append("teardown")
        if self.teardown_error is not None:
            raise self.teardown_error


def run(service: AsyncService, once: bool = False) -> int:
    try:
        return asyncio.run(service.start(once=once))
    finally:
        service.lifecycle.latch.close()
