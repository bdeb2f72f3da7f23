"""B9: the runtime image's own layers, as `container-check` reports them (not measured here)."""

from __future__ import annotations

from benchmarks.core import Figure

BUDGET_MB = 25.0


def figure(image_own_mb: float | None) -> Figure:
    """Pass `--image-own-mb N` with container-check's figure; without it, "not measured"."""
    measured = image_own_mb is not None
    return Figure(
        "B9",
        "image, own layers",
        "runtime image",
        "-",
        "MB",
        image_own_mb,
        None,
        budget=BUDGET_MB if measured else None,
        limit_on="value",
        note="from container-check"
        if measured
        else "not measured: pass --image-own-mb N from container-check",
    )
