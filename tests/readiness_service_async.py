"""The asyncio twin of readiness_service_sync.py: the same check, as a coroutine."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.main_async import run
from app.service_async import AsyncService

DEP = Path(os.environ["DEP_FILE"])
HANG = DEP.with_name(DEP.name + ".hang")


class Dependent(AsyncService):
    async def run_iteration(self) -> None:
        """The loop goes on whatever the check says."""

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        return {"dependency": self.check}

    async def check(self) -> bool:
        while HANG.exists():
            await asyncio.sleep(0.01)
        if not DEP.exists():
            raise ConnectionError("dependency down")
        return DEP.read_text() != "false"


if __name__ == "__main__":
    sys.exit(run(Dependent))
