"""The README's "Make it yours" commands, run on a copy of this checkout: what is left passes.

Each slow case copies the checkout, runs one step's commands exactly as the README shows
them, then sets the copy up from scratch the quick-start way (`python3 dev.py ...`) and runs
ruff, mypy, the test suite and the delivery and ops checks there (their tools must be
installed: .ci/run does that first). Delete this file with scripts/make_it_yours.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A step in README.md: an HTML comment naming it, then a ```sh block with its commands.
STEP = re.compile(
    r"<!-- make-it-yours: (?P<name>[\w-]+) -->\n *```sh\n(?P<commands>.*?)\n *```", re.S
)
STEPS = (
    "rename",
    "keep-sync",
    "keep-async",
    "delete-monitoring",
    "delete-deploy",
    "delete-docker",
    "delete-examples",
)
CHECKS = (
    ["ruff", "format", "--check", "."],
    ["ruff", "check", "."],
    ["mypy"],
    ["pytest", "-p", "no:cacheprovider"],
)


def readme_steps() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {match["name"]: match["commands"] for match in STEP.finditer(text)}


def test_readme_shows_each_step_once_in_a_marked_block() -> None:
    names = [match["name"] for match in STEP.finditer((ROOT / "README.md").read_text())]
    assert sorted(names) == sorted(STEPS)
    assert all(commands.strip() for commands in readme_steps().values())


# The script's own behaviour is tested on a small project of the template's shape (package
# `mini`), so these tests hold in a checkout that has already taken some of the steps.
MINI = {
    "pyproject.toml": """[project]
name = "python-service"

[project.scripts]
app-sync = "mini.main_sync:main"
app-async = "mini.main_async:main"
""",
    "docker-compose.yml": """# docker compose --profile async up   plus the asyncio service
services:
  app-sync:
    image: python-service

  app-async:
    image: python-service
    command: ["app-async"]
""",
    "src/mini/__init__.py": "",
    "src/mini/config.py": "",
    **{
        f"src/mini/{kind}_{model}.py": ""
        for kind in ("main", "service")
        for model in ("sync", "async")
    },
    "tests/test_service_sync.py": "",
    "tests/test_service_async.py": "",
}


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A tiny project of the template's shape, with this checkout's script in it."""
    for name, text in MINI.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "make_it_yours.py", tmp_path / "scripts")
    return tmp_path


def make_it_yours(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = project / "scripts" / "make_it_yours.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_keep_sync_deletes_the_async_files_script_and_service(mini: Path) -> None:
    done = make_it_yours(mini, "keep", "sync")

    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(snapshot(mini)) == [
        "docker-compose.yml",
        "pyproject.toml",
        "scripts/make_it_yours.py",
        "src/mini/__init__.py",
        "src/mini/config.py",
        "src/mini/main_sync.py",
        "src/mini/service_sync.py",
        "tests/test_service_sync.py",
    ]
    assert "app-async" not in (mini / "pyproject.toml").read_text()
    assert (
        mini / "docker-compose.yml"
    ).read_text() == "services:\n  app-sync:\n    image: python-service\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rename", "Billing", "billing"], "package 'Billing': expected a lower-case Python name"),
        (["rename", "billing-worker", "billing"], "expected a lower-case Python name"),
        (["rename", "class", "billing"], "expected a lower-case Python name"),
        (["rename", "json", "billing"], "the standard library has a module of that name"),
        (["rename", "billing", "Billing"], "service 'Billing': expected lower-case"),
        (["rename", "billing", "billing-"], "service 'billing-': expected lower-case"),
        (["rename", "billing", "b" * 41], "expected lower-case"),
        (["rename", "mini", "python-service"], "nothing to rename"),
    ],
)
def test_bad_names_are_refused_with_a_message_and_nothing_changes(
    mini: Path, args: list[str], message: str
) -> None:
    before = snapshot(mini)

    done = make_it_yours(mini, *args)

    assert done.returncode == 1
    assert done.stderr.startswith("make_it_yours: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(mini) == before


def test_a_hand_edited_file_stops_the_step_before_anything_changes(mini: Path) -> None:
    compose = mini / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("  app-async:", "  worker-async:"))
    before = snapshot(mini)

    done = make_it_yours(mini, "keep", "sync")

    assert done.returncode == 1
    assert "docker-compose.yml: no line '  app-async:'; make this change by hand" in done.stderr
    assert snapshot(mini) == before  # not even the files it had planned to delete


def test_a_model_can_be_kept_once(mini: Path) -> None:
    assert make_it_yours(mini, "keep", "sync").returncode == 0

    for model, gone in (("sync", "nothing to delete"), ("async", "nothing to keep")):
        done = make_it_yours(mini, "keep", model)
        assert (done.returncode, done.stderr.strip()) == (
            1,
            f"make_it_yours: {gone}: the async model is already gone",
        )


def test_dry_run_lists_the_changes_and_makes_none(mini: Path) -> None:
    before = snapshot(mini)

    done = make_it_yours(mini, "--dry-run", "keep", "async")

    assert done.returncode == 0
    assert "delete src/mini/main_sync.py" in done.stdout
    assert "edit   docker-compose.yml" in done.stdout
    assert done.stdout.rstrip().endswith("(dry run: nothing changed)")
    assert snapshot(mini) == before


def copy_checkout(dest: Path) -> None:
    """The files git would see: tracked or not ignored, so no virtualenv or cache."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # not deleted in the working tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def clean_env() -> dict[str, str]:
    """This process's environment without what would tie the copy to this checkout."""
    dropped = ("APP_", "VIRTUAL_ENV", "PYTEST_", "COV_CORE_", "COVERAGE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    tools = ROOT / ".tools" / "poetry" / "bin"  # where dev.py put Poetry, if it had to
    if tools.is_dir():
        env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n" + (
        done.stdout[-6000:] + done.stderr[-4000:]
    )


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_step_leaves_a_project_that_lints_types_and_passes_its_tests(
    step: str, tmp_path: Path
) -> None:
    copy, env = tmp_path / "copy", clean_env()
    copy_checkout(copy)
    run(["git", "init", "--quiet"], copy, env)  # a clone is a repository: pre-commit needs one
    run(["bash", "-euo", "pipefail", "-c", readme_steps()[step]], copy, env)
    run(["git", "add", "--all"], copy, env)
    for check in CHECKS:
        run(["python3", "dev.py", *check], copy, env)
    for script in (".ci/delivery-checks", ".ci/ops-checks"):  # the CI checks of what is left
        if (copy / script).exists():
            run(["bash", script], copy, env)
    if step == "rename":
        assert not (copy / "src" / "app").exists()
        for command in ("app-sync", "app-async"):
            assert_starts_as(copy / ".venv" / "bin" / command, "billing-worker", copy, env)


def assert_starts_as(command: Path, service: str, cwd: Path, env: dict[str, str]) -> None:
    """The renamed command starts on its defaults, logs as `service`, and stops cleanly."""
    env = {**env, "APP_METRICS_PORT": "0", "APP_HEARTBEAT_FILE": str(cwd / "heartbeat.json")}
    proc = subprocess.Popen([command], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            record = json.loads(line)
            if record.get("event") == "startup_success":
                assert record["service"] == service
                assert record["logger"].startswith("billing_worker.")
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
