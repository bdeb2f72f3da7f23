"""B8: what importing `app.health` and each model's entry point
(`app.main_sync`, `app.main_async`) costs, from `python -X importtime`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core import BenchError, Figure, Plan, interleave, median
from benchmarks.procs import MODELS, PYTHON, base_env, run_timed, workspace

HEALTH_BUDGET_MS = 10.0  # the budget: app.health adds < 10 ms of imports beyond json
# What each module must not import, because its normal path does not use it. The normal path
# is a deployed service: no YAML file, APP_VERSION and APP_HEARTBEAT_FILE set by the image,
# no typo in a setting. (The floor's prometheus_client already brings tempfile and email.)
OFF_PATH = frozenset({"yaml", "importlib.metadata", "difflib"})
OFF_MODEL_PATH = {"sync": OFF_PATH | {"asyncio"}, "async": OFF_PATH}  # sync needs no asyncio
MODULES = {
    "app.health": frozenset({"typing"}),  # annotations only: never evaluated at run time
    **{f"app.main_{model}": OFF_MODEL_PATH[model] for model in MODELS},
}


@dataclass(frozen=True)
class Entry:
    """One line of -X importtime: a module, its depth in the tree, its cumulative time."""

    name: str
    depth: int
    cumulative_us: int


def parse_importtime(text: str) -> list[Entry]:
    """Parse lines like `import time:       334 |      24036 |   json`."""
    entries = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        entries.append(Entry(stripped.strip(), depth, int(cumulative)))
    return entries


@dataclass(frozen=True)
class ImportCost:
    app_ms: float  # the app package and the module, everything they import included
    json_ms: float  # of which json (B1's floor imports json too)
    wall_ms: float  # the whole `python -c "import MODULE"`
    third_party: tuple[str, ...]  # top-level packages outside the standard library
    app_modules: tuple[str, ...]  # the template's own modules it pulls in
    modules: frozenset[str]  # every module it imports


def import_cost(module: str, cwd: Path) -> ImportCost:
    """Run `python -X importtime -c "import MODULE"` once and sum what the import added."""
    argv = [PYTHON, "-X", "importtime", "-c", f"import {module}"]
    wall, output = run_timed(argv, base_env(), cwd)
    entries = parse_importtime(output.decode())
    start = next((i for i, e in enumerate(entries) if e.name == "site" and e.depth == 0), None)
    if start is None:
        raise BenchError(f"no importtime output for {module}: {output[-300:]!r}")
    added = entries[start + 1 :]  # after interpreter start-up (site) is done
    # -X importtime also lists failed optional imports (`snappy`, `org.python.core`): keep
    # only packages that exist.
    tops = {e.name.partition(".")[0] for e in added}
    tops = {t for t in tops if t in sys.stdlib_module_names or importlib.util.find_spec(t)}
    return ImportCost(
        app_ms=sum(e.cumulative_us for e in added if e.depth == 0) / 1000,
        json_ms=sum(e.cumulative_us for e in added if e.name == "json") / 1000,
        wall_ms=wall * 1000,
        third_party=tuple(sorted(t for t in tops if t not in sys.stdlib_module_names | {"app"})),
        app_modules=tuple(e.name for e in added if e.name.startswith("app")),
        modules=frozenset(e.name for e in added),
    )


def measure(plan: Plan) -> list[Figure]:
    with workspace() as tmp:
        runners: dict[str, Callable[[], ImportCost]] = {
            module: _cost_runner(module, tmp) for module in MODULES
        }
        runners["pass"] = lambda: _bare_start(tmp)
        samples = interleave(runners, plan.rounds, plan.warmup)
    bare_ms = median([cost.wall_ms for cost in samples["pass"]])
    health = samples["app.health"]
    strays = set(health[0].third_party) | (set(health[0].app_modules) - {"app", "app.health"})
    figures = [
        Figure(
            "B8",
            "app.health imports beyond json",
            "import app.health",
            "python -c pass",
            "ms",
            median([cost.app_ms - cost.json_ms for cost in health]),
            bare_ms,
            budget=HEALTH_BUDGET_MS,
            limit_on="value",
            check=not strays,
            requirement="stdlib only",
            note=f"imports beyond the standard library: {', '.join(sorted(strays))}"
            if strays
            else "",
            details={"json_ms": median([cost.json_ms for cost in health])},
        )
    ]
    for module, off_path in MODULES.items():
        costs = samples[module]
        unused = sorted(off_path & costs[0].modules)
        import_ms = median([cost.app_ms for cost in costs])
        figures.append(
            Figure(
                "B8",
                f"python -c 'import {module}'",
                module,
                "python -c pass",
                "ms",
                median([cost.wall_ms for cost in costs]),
                bare_ms,
                check=not unused,
                requirement="nothing off its path",
                note=f"imports {import_ms:.1f} ms; third-party: "
                + (", ".join(costs[0].third_party) or "none")
                + (f"; not used on its normal path: {', '.join(unused)}" if unused else ""),
                details={
                    "import_ms": import_ms,
                    "third_party": costs[0].third_party,
                    "app_modules": costs[0].app_modules,
                    "off_path_imports": unused,
                },
            )
        )
    return figures


def _cost_runner(module: str, cwd: Path) -> Callable[[], ImportCost]:
    return lambda: import_cost(module, cwd)


def _bare_start(cwd: Path) -> ImportCost:
    wall, _ = run_timed([PYTHON, "-c", "pass"], base_env(), cwd)
    return ImportCost(0.0, 0.0, wall * 1000, (), (), frozenset())
