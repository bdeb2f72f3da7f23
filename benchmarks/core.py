"""Figures, budgets, verdicts and the interleaved sampling every figure uses."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

# A figure fails CI only when it misses its budget by more than this: a busy 2-core machine
# moves medians by 10-20 % between runs, a real regression moves them by more.
NOISE_MARGIN = 0.25

T = TypeVar("T")


class BenchError(Exception):
    """A subject or baseline did not behave (no start, wrong exit status, hang)."""


@dataclass(frozen=True)
class Plan:
    """How many samples each figure takes: --quick (CI, < 90 s) or the full run."""

    name: str
    warmup: int  # rounds run and thrown away first (page cache, pyc files, CPU frequency)
    rounds: int  # short processes: B1, B2/B3 idle, B8
    busy_signals: int  # B3: signals into a busy loop, per model
    memory_rounds: int  # B4: each takes 3 s
    loop_rounds: int  # B5
    loop_window_seconds: float
    log_rounds: int  # B6
    log_records: int  # per round
    scrape_rounds: int  # B7
    scrape_requests: int  # per client thread per round


QUICK = Plan(
    name="quick",
    warmup=1,
    rounds=7,
    busy_signals=20,
    memory_rounds=2,
    loop_rounds=3,
    loop_window_seconds=0.8,
    log_rounds=7,
    log_records=5000,
    scrape_rounds=5,
    scrape_requests=40,
)
# The budget asks for at least 50 busy-loop signals per model: the full run sends 60.
FULL = Plan(
    name="full",
    warmup=2,
    rounds=21,
    busy_signals=60,
    memory_rounds=3,
    loop_rounds=7,
    loop_window_seconds=2.0,
    log_rounds=21,
    log_records=20000,
    scrape_rounds=11,
    scrape_requests=100,
)


@dataclass
class Figure:
    """One line of the table: subject and baseline medians, their ratio, the verdict.

    `budget` bounds the ratio (`limit_on="ratio"`) or the subject's own value
    (`limit_on="value"`, e.g. milliseconds of imports). `check` is a yes/no requirement
    (clean exits, stdlib only) that fails outright, with no noise margin.
    """

    id: str
    what: str
    subject: str
    baseline: str
    unit: str
    subject_value: float | None
    baseline_value: float | None
    budget: float | None = None
    higher_is_better: bool = False
    limit_on: str = "ratio"
    check: bool | None = None
    requirement: str = ""  # what `check` asks, for the budget column
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.subject_value is None or not self.baseline_value:
            return None
        return self.subject_value / self.baseline_value

    @property
    def verdict(self) -> str:
        if self.check is False:
            return "FAIL"
        if self.budget is None:
            if self.check is None:
                return "n/a" if self.subject_value is None else "info"
            return "PASS"
        value = self.ratio if self.limit_on == "ratio" else self.subject_value
        if value is None:
            return "n/a"
        if self.higher_is_better:
            ok, tolerated = value >= self.budget, value >= self.budget / (1 + NOISE_MARGIN)
        else:
            ok, tolerated = value <= self.budget, value <= self.budget * (1 + NOISE_MARGIN)
        return "PASS" if ok else "MISS" if tolerated else "FAIL"

    @property
    def budget_text(self) -> str:
        parts = []
        if self.budget is not None:
            sign = ">=" if self.higher_is_better else "<="
            suffix = "x" if self.limit_on == "ratio" else f" {self.unit}"
            parts.append(f"{sign} {self.budget:g}{suffix}")
        if self.requirement:
            parts.append(self.requirement)
        return ", ".join(parts) or "-"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {"ratio": self.ratio, "verdict": self.verdict, "budget_text": self.budget_text}
        return data


def error_figure(figure_id: str, what: str, exc: Exception) -> Figure:
    """A figure that could not be measured: it fails, and the table says why."""
    return Figure(figure_id, what, "-", "-", "", None, None, check=False, note=f"error: {exc}")


def interleave(runners: dict[str, Callable[[], T]], rounds: int, warmup: int) -> dict[str, list[T]]:
    """Run each runner once per round, rotating the order, and keep the post-warm-up samples.

    Interleaving puts subject and baseline under the same background load; rotating the
    order keeps "always runs first" (warm caches, or a neighbour's burst) from favouring one.
    """
    samples: dict[str, list[T]] = {name: [] for name in runners}
    order = list(runners)
    for index in range(warmup + rounds):
        shift = index % len(order)
        for name in order[shift:] + order[:shift]:
            value = runners[name]()
            if index >= warmup:
                samples[name].append(value)
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: with 160 samples, p99 is the 2nd largest, not interpolated."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
