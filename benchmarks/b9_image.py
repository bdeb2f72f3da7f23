"""B9: the runtime image's own layers (the image less its base), given, not measured here."""

from __future__ import annotations

from benchmarks.core import Figure

BUDGET_MB = 25.0


def figure(image_own_mb: float | None) -> Figure:
    """Pass `--image-own-mb N` from an image build; without it, "not measured"."""
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
        note="given with --image-own-mb" if measured else "not measured: pass --image-own-mb N",
    )
