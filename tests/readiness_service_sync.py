"""A sync service whose readiness check the test drives through files (tests/test_readiness.py).

The check raises while $DEP_FILE is missing, returns False while it holds "false", passes
otherwise, and hangs while $DEP_FILE.hang exists.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.main_sync import run
from app.service_sync import Service

DEP = Path(os.environ["DEP_FILE"])
HANG = DEP.with_name(DEP.name + ".hang")


class Dependent(Service):
    def run_iteration(self) -> None:
        """The loop goes on whatever the check says."""

    def readiness_checks(self) -> dict[str, Callable[[], object]]:
        return {"dependency": self.check}

    def check(self) -> bool:
        while HANG.exists():
            time.sleep(0.01)
        if not DEP.exists():
            raise ConnectionError("dependency down")
        return DEP.read_text() != "false"


if __name__ == "__main__":
    sys.exit(run(Dependent))
