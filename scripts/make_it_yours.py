"""Make the template yours: rename it, keep one execution model, delete what you do not use.

    python3 scripts/make_it_yours.py rename billing_worker billing-worker
    python3 scripts/make_it_yours.py keep sync            # or: keep async
    python3 scripts/make_it_yours.py delete monitoring    # the Compose monitoring profile
    python3 scripts/make_it_yours.py delete deploy        # all of deploy/: k8s, alerts, Grafana
    python3 scripts/make_it_yours.py delete docker        # Dockerfile, Compose, image CI jobs
    python3 scripts/make_it_yours.py delete examples

Add --dry-run to see what would change. Every edit first checks that the text it changes is
still there, and nothing is written unless all of them are, so a file you already changed by
hand stops the command with a message instead of leaving a half-done job. Standard library
only. Delete this script and tests/test_make_it_yours.py when you are done with them.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", ".tools", "__pycache__", ".mypy_cache", ".ruff_cache"}
SKIP_DIRS |= {".pytest_cache", ".hypothesis", "htmlcov", "node_modules"}
CODE_DIRS = ("src", "tests", "benchmarks", "examples")  # where model-specific files live
MODELS = ("sync", "async")
DELIVERY_FILES = ("Dockerfile", "docker-compose.yml")


class Stop(Exception):
    """The checkout is not as this script expects; the message says where."""


class Plan:
    """Changes collected first, checked, then applied together (or only printed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.texts: dict[Path, str] = {}  # new contents by path
        self.removals: list[Path] = []
        self.moves: list[tuple[Path, Path]] = []
        self.notes: list[str] = []

    def text(self, rel: str | Path) -> str:
        path = self.root / rel
        if path not in self.texts:
            if not path.is_file():
                raise Stop(f"{rel}: not found")
            self.texts[path] = path.read_text(encoding="utf-8")
        return self.texts[path]

    def replace(self, rel: str | Path, old: str, new: str) -> None:
        """Replace every `old` in the file; it must occur at least once."""
        text = self.text(rel)
        if old not in text:
            raise Stop(f"{rel}: {old!r} not found; make this change by hand")
        self.texts[self.root / rel] = text.replace(old, new)

    def sub(self, rel: str | Path, pattern: str, new: str) -> None:
        """Regex replace, line by line (re.M); the pattern must match at least once."""
        text, count = re.subn(pattern, new, self.text(rel), flags=re.M)
        if not count:
            raise Stop(f"{rel}: nothing matches {pattern!r}; make this change by hand")
        self.texts[self.root / rel] = text

    def drop_block(self, rel: str | Path, header: str) -> None:
        """Remove each YAML block that starts with the line `header` (and its comment above)."""
        if header not in self.text(rel).splitlines():
            raise Stop(f"{rel}: no line {header!r}; make this change by hand")
        while header in self.text(rel).splitlines():
            self._drop_first_block(rel, header)

    def _drop_first_block(self, rel: str | Path, header: str) -> None:
        lines = self.text(rel).splitlines(keepends=True)
        start = [line.rstrip("\n") for line in lines].index(header)
        indent = len(header) - len(header.lstrip())
        end = start + 1
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
        ):
            end += 1
        while start > 0 and lines[start - 1].strip().startswith("#"):
            if len(lines[start - 1]) - len(lines[start - 1].lstrip()) != indent:
                break
            start -= 1
        if start and lines[start - 1].strip() and not lines[end - 1].strip():
            end -= 1  # keep one blank line between what came before and after
        kept = lines[:start] + lines[end:]
        while kept and not kept[-1].strip():  # the block was the last: no blank lines at the end
            kept.pop()
        self.texts[self.root / rel] = "".join(kept)

    def exists(self, rel: str | Path) -> bool:
        """Whether `rel` is there and not about to be removed."""
        path = self.root / rel
        return path.exists() and not any(p == path or p in path.parents for p in self.removals)

    def remove(self, rel: str | Path, *, required: bool = True) -> None:
        path = self.root / rel
        if path.exists():
            self.removals.append(path)
        elif required:
            raise Stop(f"{rel}: not found")

    def files(self) -> list[Path]:
        """Every file of the checkout, relative, never entering virtualenvs, caches or .git."""
        found = []
        for top, dirs, names in os.walk(self.root):
            dirs[:] = [name for name in dirs if name not in SKIP_DIRS]  # prune: not walked
            found += [Path(top, name).relative_to(self.root) for name in names]
        return sorted(found)

    def apply(self, dry_run: bool) -> None:
        for path in self.removals:
            print(f"delete {path.relative_to(self.root)}{'/' if path.is_dir() else ''}")
        for path, text in self.texts.items():
            if path.read_text(encoding="utf-8") != text and path not in self.removals:
                print(f"edit   {path.relative_to(self.root)}")
        for old, new in self.moves:
            print(f"move   {old.relative_to(self.root)} -> {new.relative_to(self.root)}")
        if dry_run:
            print("(dry run: nothing changed)")
            return
        for path, text in self.texts.items():
            if path not in self.removals:
                path.write_text(text, encoding="utf-8")
        for path in self.removals:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for old, new in self.moves:
            old.rename(new)
        for note in self.notes:
            print(note)


def package(plan: Plan) -> str:
    """The one package under src/ (`app` until renamed)."""
    found = [p.parent.name for p in (plan.root / "src").glob("*/__init__.py")]
    if len(found) != 1:
        raise Stop(f"src/: expected one package, found {found or 'none'}")
    return found[0]


def service_name(plan: Plan) -> str:
    match = re.search(r'^name = "([^"]+)"$', plan.text("pyproject.toml"), flags=re.M)
    if not match:
        raise Stop('pyproject.toml: no name = "..." line')
    return match.group(1)


def rename(plan: Plan, new_package: str, new_service: str) -> None:
    """Package (import name), service name, distribution and image name, everywhere."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", new_package) or keyword.iskeyword(new_package):
        raise Stop(
            f"package {new_package!r}: expected a lower-case Python name, e.g. billing_worker"
        )
    if new_package in sys.stdlib_module_names:
        raise Stop(f"package {new_package!r}: the standard library has a module of that name")
    if not re.fullmatch(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?", new_service):
        raise Stop(f"service {new_service!r}: expected lower-case letters, digits, '-'")
    old_package, old_service = package(plan), service_name(plan)
    if (new_package, new_service) == (old_package, old_service):
        raise Stop("nothing to rename: those are the current names")
    if (plan.root / "src" / new_package).exists() and new_package != old_package:
        raise Stop(f"src/{new_package} already exists")
    modules = "|".join(sorted(p.stem for p in (plan.root / "src" / old_package).glob("*.py")))
    patterns = [
        (rf"\b{old_package}\.({modules})\b", rf"{new_package}.\1"),  # app.config, "app.runner"
        (rf"^(\s*)from {old_package} import\b", rf"\1from {new_package} import"),
        (rf"\bsrc/{old_package}\b", f"src/{new_package}"),
        (
            rf'^packages = \[\{{ include = "{old_package}"',
            f'packages = [{{ include = "{new_package}"',
        ),
        (rf'^source = \["{old_package}"\]', f'source = ["{new_package}"]'),
        (re.escape(old_service), new_service),
    ]
    for rel in plan.files():
        if rel == Path("scripts/make_it_yours.py") or rel.name == "poetry.lock":
            continue
        try:
            text = plan.text(rel)
        except UnicodeDecodeError:
            continue  # not text
        for pattern, new in patterns:
            text = re.sub(pattern, new, text, flags=re.M)
        plan.texts[plan.root / rel] = text
        if old_service in rel.name:
            plan.moves.append(
                (
                    plan.root / rel,
                    plan.root / rel.with_name(rel.name.replace(old_service, new_service)),
                )
            )
    if new_package != old_package:
        plan.moves.append((plan.root / "src" / old_package, plan.root / "src" / new_package))
    plan.notes.append(
        f"Renamed {old_package} -> {new_package} and {old_service} -> {new_service}. The APP_ "
        "variables, app_ metrics and app-* commands keep their names. Next, as the README "
        "says: python3 dev.py ruff check --fix --select I . && python3 dev.py ruff format ."
    )


def keep(plan: Plan, model: str) -> None:
    """Delete the other model: its files (`*_sync*` / `*_async*`), script, Compose and k8s parts."""
    other = "async" if model == "sync" else "sync"
    for name, gone in ((model, "nothing to keep"), (other, "nothing to delete")):
        if not (plan.root / "src" / package(plan) / f"main_{name}.py").exists():
            raise Stop(f"{gone}: the {name} model is already gone")
    for rel in plan.files():
        if rel.parts[0] in CODE_DIRS and f"_{other}" in rel.name:
            plan.remove(rel)
    plan.sub("pyproject.toml", rf"^app-{other} = .*\n", "")
    # Lines that only make sense with both models, where those files are still there.
    both = {
        "Dockerfile": r"^# One image for both models.*\n",
        "docker-compose.yml": r"^# docker compose --profile async .*\n",
        "deploy/k8s/base/kustomization.yaml": r" Async model: deploy/k8s/overlays/async\.",
        ".ci/delivery-checks": r"--profile async ",
    }
    for name, pattern in both.items():
        if plan.exists(name):
            plan.sub(name, pattern, "")
    plan.remove("deploy/k8s/overlays", required=False)  # its one overlay switches to async
    if plan.exists("docker-compose.yml"):
        plan.drop_block("docker-compose.yml", "  app-async:")  # the service of profile async
    if plan.exists("deploy/compose/prometheus.yml"):
        plan.replace("deploy/compose/prometheus.yml", ', "app-async:8000"', "")
    if plan.exists(".github/workflows/ci.yml"):
        plan.drop_block(".github/workflows/ci.yml", "      - name: Smoke test app-async")
    if model == "async":  # what runs app-sync by default (image, Compose, k8s) now runs app-async
        for rel in plan.files():
            delivery = rel.parts[0] in ("deploy", ".github") or rel.name in DELIVERY_FILES
            if delivery and plan.exists(rel) and "app-sync" in plan.text(rel):
                plan.replace(rel, "app-sync", "app-async")


def delete(plan: Plan, part: str) -> None:
    if part in ("monitoring", "deploy") and plan.exists("deploy/compose"):
        compose = "docker-compose.yml"
        plan.sub(compose, r"^# docker compose --profile monitoring .*\n(#  .*\n)*", "")
        for header in ("  prometheus:", "  grafana:", "volumes:"):
            plan.drop_block(compose, header)
        plan.remove("deploy/compose")
        plan.remove("deploy/grafana")
        plan.remove("tests/test_dashboard.py")
        if plan.exists(".ci/delivery-checks"):
            plan.sub(".ci/delivery-checks", r"--profile monitoring ", "")
    if part == "deploy":
        plan.remove("deploy")
        for rel in ("tests/test_deploy.py", "tests/test_monitoring.py", "tests/promql.py"):
            plan.remove(rel)
        plan.remove(".ci/ops-checks")
        workflow = ".github/workflows/ci.yml"
        plan.drop_block(
            workflow, "      - name: Ops checks (alert rules and their tests, Kubernetes manifests)"
        )
        plan.drop_block(workflow, "      - if: hashFiles('.ci/ops-checks') != ''")  # its installs
    if part == "docker":
        if plan.exists("deploy/k8s"):
            raise Stop("deploy/k8s runs the image the Dockerfile builds: delete deploy first")
        delete(plan, "monitoring")  # a Compose profile
        for rel in ("Dockerfile", ".dockerignore", "docker-compose.yml", "tests/test_docker.py"):
            plan.remove(rel)
        plan.remove(".github/scripts/docker-smoke-test")
        for job in ("  docker:", "  publish:"):  # build and smoke-test, push to GHCR
            plan.drop_block(".github/workflows/ci.yml", job)
        for ecosystem in ("docker", "docker-compose"):
            plan.drop_block(".github/dependabot.yml", f"  - package-ecosystem: {ecosystem}")
    if part == "examples":
        plan.remove("examples")
        plan.sub("pyproject.toml", r', "examples"', "")  # testpaths, mypy files
        plan.sub("pyproject.toml", r'^"examples/test_\*\.py" = \[\n(    .*\n)*\]\n', "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("rename", help="rename the package and the service")
    cmd.add_argument("package", help="Python package name, e.g. billing_worker")
    cmd.add_argument("service", help="service, distribution and image name, e.g. billing-worker")
    sub.add_parser("keep", help="keep one model, delete the other").add_argument(
        "model", choices=MODELS
    )
    sub.add_parser("delete", help="delete a part you do not use").add_argument(
        "part", choices=("monitoring", "deploy", "docker", "examples")
    )
    args = parser.parse_args(argv)
    plan = Plan(ROOT)
    try:
        if args.command == "rename":
            rename(plan, args.package, args.service)
        elif args.command == "keep":
            keep(plan, args.model)
        else:
            delete(plan, args.part)
    except Stop as exc:
        print(f"make_it_yours: {exc}", file=sys.stderr)
        return 1
    plan.apply(args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
