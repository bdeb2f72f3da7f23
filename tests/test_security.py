"""Security: secrets never shown in clear, metrics bound to loopback on request.

The secret test works as a user would: it copies the project, adds `api_token` and
`database_dsn` settings to `Config` in the copy, and runs the copy's code (same venv) with
real secret values: --check-config, a bad value, a short real run with its logs, heartbeat,
app-health output and HTTP endpoints. The value must appear nowhere; `***` stands for it.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Running, prefer, wait_until

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-value"
ADDED_SETTINGS = """\
    api_token: str = ""
    database_dsn: str = setting("", pattern=r"(postgres://.+)?")
"""
PACKAGE = next(init.parent.name for init in (ROOT / "src").glob("*/__init__.py"))  # app
RUN_COPY = f"import sys; from {PACKAGE}.main_{prefer('sync')} import main; sys.exit(main())"


# --- Binding to loopback ----------------------------------------------------------------------


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


@pytest.fixture
def local_address() -> str:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    return address


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", False), ("0.0.0.0", True)],  # the second shows the address is reachable
    ids=["loopback", "all-interfaces"],
)
def test_metrics_host_loopback_is_not_reachable_on_other_addresses(
    start: Callable[..., Running], local_address: str, host: str, expected: bool
) -> None:
    proc = start(f"app-{prefer('sync')}", APP_METRICS_HOST=host)
    port = proc.port

    assert reachable(local_address, port) is expected
    assert proc.get("/healthz")[0] == 200  # loopback answers either way

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


# --- Secrets, tested by adding secret settings to a copy of the project ---------------------


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project copied, with two secret settings added to Config as a user would add them."""
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "poetry.lock", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    config = copy / "src" / PACKAGE / "config.py"
    text = config.read_text()
    anchor = re.search(r"^    commit: str = .*\n", text, re.MULTILINE)
    assert anchor is not None, "Config has no `commit` field to add the settings after"
    config.write_text(text[: anchor.end()] + ADDED_SETTINGS + text[anchor.end() :])
    return copy


def copy_env(copy: Path, service_env: dict[str, str], **extra: str) -> dict[str, str]:
    """Run the copy's code: its src/ first on the path, then the venv's packages.

    Without COVERAGE_* variables: the copy is not the project, coverage must not count it.
    """
    return {
        **{k: v for k, v in service_env.items() if not k.startswith("COVERAGE_")},
        "PYTHONPATH": str(copy / "src"),
        "APP_API_TOKEN": SECRET,
        "APP_DATABASE_DSN": f"postgres://app:{SECRET}@db/app",
        **extra,
    }


def run_copy(
    copy: Path, env: dict[str, str], *args: str, module: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = ["-m", module] if module else ["-c", RUN_COPY]
    return subprocess.run(
        [sys.executable, *command, *args],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_shows_secrets_as_stars(
    project_copy: Path, service_env: dict[str, str]
) -> None:
    result = run_copy(project_copy, copy_env(project_copy, service_env), "--check-config")
    other = run_copy(
        project_copy,
        copy_env(project_copy, service_env, APP_API_TOKEN="another-" + SECRET),
        "--check-config",
    )

    assert (result.returncode, result.stderr) == (0, "")
    shown = json.loads(result.stdout)
    for name in ("api_token", "database_dsn"):
        assert shown["settings"][name] == {"value": "***", "source": f"env APP_{name.upper()}"}
    assert SECRET not in result.stdout + other.stdout + other.stderr
    # The hash is of the redacted settings: it cannot be used to guess the secret.
    assert json.loads(other.stdout)["config_hash"] == shown["config_hash"]


def test_invalid_secret_value_is_reported_as_stars(
    project_copy: Path, service_env: dict[str, str]
) -> None:
    env = copy_env(project_copy, service_env, APP_DATABASE_DSN=f"mysql://app:{SECRET}@db")

    result = run_copy(project_copy, env)

    assert (result.returncode, result.stderr) == (78, "")
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["event"] == "config_invalid"
    assert record["problems"] == [
        "database_dsn=*** (env APP_DATABASE_DSN): expected a lower-case token matching "
        "(postgres://.+)?"
    ]
    assert SECRET not in result.stdout


def test_secret_appears_nowhere_in_a_real_run(
    project_copy: Path, service_env: dict[str, str]
) -> None:
    """Logs, heartbeat, app-health, /metrics, /healthz, /readyz: all show *** or nothing."""
    env = copy_env(project_copy, service_env, APP_API_TOKNE=SECRET)  # a typo'd name too
    heartbeat = Path(env["APP_HEARTBEAT_FILE"])
    proc = Running([sys.executable, "-c", RUN_COPY], env, project_copy)
    try:
        started = proc.wait_for_event("startup_begin")
        wait_until(lambda: any(r.get("msg") == "example iteration" for r in proc.records))
        beat = heartbeat.read_text()
        health = run_copy(project_copy, env, "--file", str(heartbeat), module="app.health")
        pages = [proc.get(path) for path in ("/metrics", "/healthz", "/readyz")]
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.kill()

    config: dict[str, Any] = started["config"]
    assert config["api_token"] == "***"  # the copy's Config, with the added settings
    assert config["database_dsn"] == "***"
    assert [r["msg"] for r in proc.events("config_warning")] == [
        "unknown variable APP_API_TOKNE (env) is ignored: did you mean 'APP_API_TOKEN'?"
    ]
    assert health.returncode == 0
    assert [status for status, _ in pages] == [200, 200, 200]
    everything = [*proc.lines, proc.stderr, beat, health.stdout, health.stderr]
    everything += [body for _, body in pages]
    assert [text for text in everything if SECRET in text] == []
