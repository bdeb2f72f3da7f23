"""The asyncio twin of noop_sync.py, run through `app.main_async.run`."""

from __future__ import annotations

import sys

from app.main_async import run
from app.service_async import AsyncService


class Noop(AsyncService):
    async def run_iteration(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(run(Noop))
