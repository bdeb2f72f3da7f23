"""Recipe: a blocking worker that processes files dropped into a directory, idempotently.

Run: INBOX_DIR=inbox python3 dev.py python examples/file_drop_sync.py [--once]

Each iteration runs `work()` on the files in INBOX_DIR (default `inbox`), in name order, and
moves each to `done/` or `failed/` in it with `os.replace`: atomic, so after a crash a file is
in the inbox (and is processed again: the work must be idempotent) or in done/ or failed/.
Writers write `.name` or `name.tmp`, then rename it: such names are never taken half-written.
"""

import json
import logging
import os
from pathlib import Path

from prometheus_client import Counter

from app.main_sync import run
from app.service_sync import Service

log = logging.getLogger(__name__)


class FileDrop(Service):
    """Results go to out/. An OSError (disk full, say) fails the iteration; the file stays."""

    def setup(self) -> None:
        # In your own service this is a Config field (`inbox_dir: Path`, read from
        # APP_INBOX_DIR); the template's Config is closed, so the recipe reads its own variable.
        self.inbox = Path(os.environ.get("INBOX_DIR", "inbox"))
        for name in ("done", "failed", "out"):
            (self.inbox / name).mkdir(parents=True, exist_ok=True)
        self.files = Counter(
            "app_files_total", "Inbox files by outcome", ["outcome"], registry=self.metrics.registry
        )
        for outcome in ("done", "failed"):  # export both series from the start, at 0
            self.files.labels(outcome=outcome)

    def run_iteration(self) -> None:
        for path in sorted(p for p in self.inbox.iterdir() if is_ready(p)):
            if self.stopping:  # the rest stays in the inbox for the next run
                return
            try:
                result = self.work(path.read_text(encoding="utf-8"))
            except ValueError as exc:  # bad content (UnicodeDecodeError, too): set it aside
                os.replace(path, self.inbox / "failed" / path.name)
                self.files.labels(outcome="failed").inc()
                log.error(
                    "file failed",
                    extra={"event": "file_failed", "file": path.name, "error": str(exc)},
                )
                continue
            tmp = self.inbox / "out" / f".{path.name}.tmp"
            tmp.write_text(json.dumps(result) + "\n", encoding="utf-8")
            os.replace(tmp, self.inbox / "out" / path.name)  # same input, same output
            os.replace(path, self.inbox / "done" / path.name)
            self.files.labels(outcome="done").inc()
            log.info("file done", extra={"event": "file_done", "file": path.name, **result})

    def work(self, text: str) -> dict[str, float]:
        """The work (replace it): sum the `amount` of each JSON line. ValueError = bad file."""
        records, total = 0, 0.0
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                record = json.loads(line)  # json.JSONDecodeError is a ValueError
                amount = record.get("amount") if isinstance(record, dict) else None
                if not isinstance(amount, int | float):
                    raise ValueError(f"line {number}: expected an object with a numeric amount")
                records, total = records + 1, total + amount
        return {"records": records, "total": total}


def is_ready(path: Path) -> bool:
    """Complete files only: writers rename `.name` or `name.tmp` to `name` when done."""
    return path.is_file() and not path.name.startswith(".") and not path.name.endswith(".tmp")


if __name__ == "__main__":
    raise SystemExit(run(FileDrop))
