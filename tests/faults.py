"""What the services that misbehave on purpose share: phase markers, timings, failures.

The services themselves are tests/faults_sync.py and tests/faults_async.py, run as real
processes by the end-to-end tests (`conftest.fault(model, FAULT)` builds the argv):

    python tests/faults_sync.py FAULT [app options...]

FAULT names the behaviour: see the `self.fault == ...` branches there. `phases` prints a
JSON marker as each phase begins (setup, iteration, its end, teardown) and sleeps in it:
FAULT_SETUP_SECONDS, FAULT_ITERATION_SECONDS, FAULT_TEARDOWN_SECONDS; with FAULT_STOP_AFTER=N
it stops itself after N iterations. `slow_*` phases last FAULT_SECONDS.
"""

from __future__ import annotations

import json
import os


def marker(name: str, **fields: object) -> None:
    """A JSON line on stdout that tells the test which phase the service is in."""
    print(json.dumps({"marker": name, **fields}), flush=True)


def seconds(name: str, default: str = "0") -> float:
    """A phase duration from the environment (FAULT_SETUP_SECONDS, ...), `default` when unset."""
    return float(os.environ.get(name, default))


def stop_after() -> int:
    """FAULT_STOP_AFTER=N: the service stops itself after N iterations (0: never)."""
    return int(os.environ.get("FAULT_STOP_AFTER", "0"))


def fail_every(n: int, count: int) -> None:
    """Raise on every n-th iteration, counting from 1."""
    if count % n == 0:
        raise RuntimeError(f"iteration {count} failed on purpose")


def queue_depth() -> float:
    """A user's metric callback that fails at every scrape."""
    raise ConnectionError("queue unreachable on purpose")


def raise_in_thread() -> None:
    raise LookupError("background thread failed on purpose")
