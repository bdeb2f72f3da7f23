"""A sync service whose iteration does nothing, run through `app.main_sync.run`.

With `loop_sleep_seconds: 0` it shows what the loop itself costs per iteration (B5) and
gives signals a busy loop to land in (B3). Run by path: `python noop_sync.py [options]`.
"""

from __future__ import annotations

import sys

from app.main_sync import run
from app.service_sync import Service


class Noop(Service):
    def run_iteration(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(run(Noop))
