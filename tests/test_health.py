"""`app-health`: one JSON line, exit 0 for a fresh heartbeat, 1 with a reason for anything else."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Running, prefer, wait_until

from app import health
from app.heartbeat import HeartbeatFile, LoopState

BIN = Path(sys.executable).parent
IDENTITY = {
    "run_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "service": "billing",
    "env": "stg",
    "version": "1.2.3",
    "commit": "abc123",
    "config_hash": "sha256:" + "1" * 64,
}
REPORT_KEYS = {*IDENTITY, "status", "timestamp", "checks"}
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
NO_SUCH_PID = 2**30  # above Linux's largest pid_max (2**22): never a live process


def beat(**changes: object) -> dict[str, Any]:
    """A heartbeat as the service writes it, fresh, from this (live) process."""
    now = time.time()
    data: dict[str, Any] = {
        **IDENTITY,
        "pid": os.getpid(),
        "status": "running",
        "ts": now,
        "started_ts": now - 60,
        "last_iteration_ts": now,
        "last_success_ts": now,
        "iterations": 12,
        "failures": 0,
        "consecutive_failures": 0,
        "max_age_seconds": 30.0,
    }
    return data | changes


def without(key: str) -> dict[str, Any]:
    data = beat()
    del data[key]
    return data


def write(path: Path, data: dict[str, Any] | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def parse_report(out: str) -> dict[str, Any]:
    """The output is exactly one JSON line with every field of SPEC §7."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    report: dict[str, Any] = json.loads(lines[0])
    assert report.keys() == REPORT_KEYS
    assert report["status"] in ("ok", "fail")
    assert TS.fullmatch(report["timestamp"])
    assert report["checks"]
    for check in report["checks"]:
        assert {"name", "status", "latency_ms"} <= check.keys()
        assert check["latency_ms"] >= 0
        assert ("reason" in check) == (check["status"] == "fail")
    assert (report["status"] == "ok") == all(c["status"] == "ok" for c in report["checks"])
    return report


Check = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def check(capsys: pytest.CaptureFixture[str]) -> Check:
    """Run `app.health.main(args)` in this process; return its status and its report."""

    def run(*args: str | Path) -> tuple[int, dict[str, Any]]:
        status = health.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        assert captured.err == ""
        return status, parse_report(captured.out)

    return run


def reason(report: dict[str, Any]) -> str:
    return " | ".join(str(c.get("reason", "")) for c in report["checks"])


# --- Liveness --------------------------------------------------------------------------------


def test_fresh_heartbeat_from_the_real_writer_is_healthy(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    now = time.time()
    state = LoopState(status="running", iterations=1, last_iteration_ts=now, last_success_ts=now)
    HeartbeatFile(path, IDENTITY, max_age_seconds=30).write(state)

    status, report = check("--file", path)

    assert status == 0
    assert report["status"] == "ok"
    assert {key: report[key] for key in IDENTITY} == IDENTITY
    [heartbeat] = report["checks"]
    assert heartbeat["name"] == "heartbeat"
    assert heartbeat["status"] == "ok"
    assert heartbeat["path"] == str(path)
    assert heartbeat["pid"] == os.getpid()
    assert heartbeat["max_age_seconds"] == 30
    assert 0 <= heartbeat["age_seconds"] <= 30
    assert heartbeat["service_status"] == "running"


def test_liveness_does_not_need_a_successful_iteration(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(status="starting", last_success_ts=None))

    assert check("--file", path)[0] == 0


def test_stale_heartbeat_is_unhealthy(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(ts=time.time() - 120, max_age_seconds=30))

    status, report = check("--file", path)

    assert status == 1
    assert report["status"] == "fail"
    assert report["checks"][0]["age_seconds"] >= 120
    assert "heartbeat is stale" in reason(report)
    assert "limit 30s" in reason(report)
    assert report["service"] == "billing"  # identity still shown for a failing heartbeat


def test_max_age_option_allows_an_older_heartbeat(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(ts=time.time() - 60, max_age_seconds=30))

    status, report = check("--file", path, "--max-age", "120")

    assert status == 0
    assert report["checks"][0]["max_age_seconds"] == 120


def test_max_age_option_tightens_the_limit(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(ts=time.time() - 10, max_age_seconds=30))

    status, report = check(f"--file={path}", "--max-age=5")

    assert status == 1
    assert "limit 5s" in reason(report)


def test_missing_heartbeat_is_unhealthy(check: Check, tmp_path: Path) -> None:
    status, report = check("--file", tmp_path / "nowhere.json")

    assert status == 1
    assert "is missing: service not running?" in reason(report)
    assert report["run_id"] is None
    assert report["checks"][0]["name"] == "heartbeat"


def test_heartbeat_from_the_future_is_unhealthy(check: Check, tmp_path: Path) -> None:
    """The clock was stepped back: the timestamps prove nothing any more."""
    path = write(tmp_path / "hb.json", beat(ts=time.time() + 600))

    status, report = check("--file", path)

    assert status == 1
    assert "in the future" in reason(report)


def test_heartbeat_of_a_process_that_is_gone_is_unhealthy(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(pid=NO_SUCH_PID))

    status, report = check("--file", path)

    assert status == 1
    assert f"process {NO_SUCH_PID} that wrote the heartbeat is gone" in reason(report)


def test_heartbeat_of_a_live_process_of_another_user_is_healthy(
    check: Check, tmp_path: Path
) -> None:
    """PID 1 always exists; without root, probing it fails with EPERM, which means alive."""
    path = write(tmp_path / "hb.json", beat(pid=1))

    assert check("--file", path)[0] == 0


def test_identity_fields_that_are_not_strings_are_null(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(service=7, env=None))

    status, report = check("--file", path)

    assert status == 0
    assert report["service"] is None
    assert report["env"] is None
    assert report["version"] == "1.2.3"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"{not json", "is not valid JSON", id="not-json"),
        pytest.param(b"", "is not valid JSON", id="empty"),
        pytest.param(b"\xff\xfe\x00", "is not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "is not a JSON object", id="list"),
        pytest.param(b'"ok"', "is not a JSON object", id="string"),
        pytest.param(without("ts"), "ts is missing", id="no-ts"),
        pytest.param(beat(ts="yesterday"), "ts is missing or not a valid number", id="ts-text"),
        pytest.param(beat(ts=True), "ts is missing or not a valid number", id="ts-bool"),
        pytest.param(beat(ts=-5), "ts is missing or not a valid number", id="ts-negative"),
        pytest.param(beat(ts=10**400), "ts is missing or not a valid number", id="ts-huge-int"),
        pytest.param(without("pid"), "pid is missing", id="no-pid"),
        pytest.param(beat(pid=-1), "pid is missing or not a valid pid", id="pid-negative"),
        pytest.param(beat(pid=0), "pid is missing or not a valid pid", id="pid-zero"),
        pytest.param(beat(pid=1.5), "pid is missing or not a valid pid", id="pid-float"),
        pytest.param(beat(pid=True), "pid is missing or not a valid pid", id="pid-bool"),
        pytest.param(beat(pid="123"), "pid is missing or not a valid pid", id="pid-text"),
        pytest.param(without("max_age_seconds"), "max_age_seconds is missing", id="no-max-age"),
        pytest.param(beat(max_age_seconds="30"), "max_age_seconds", id="max-age-text"),
        pytest.param(without("status"), "status is not one of", id="no-status"),
        pytest.param(beat(status="sleeping"), "status is not one of", id="unknown-status"),
        pytest.param(b" " * (health.MAX_FILE_BYTES + 1), "is larger than", id="too-large"),
    ],
)
def test_malformed_heartbeat_is_unhealthy(
    check: Check, tmp_path: Path, content: dict[str, Any] | bytes, expected: str
) -> None:
    path = write(tmp_path / "hb.json", content)

    status, report = check("--file", path)

    assert status == 1
    assert expected in reason(report)
    assert str(path) in reason(report)


def test_directory_instead_of_a_file_is_unhealthy(check: Check, tmp_path: Path) -> None:
    status, report = check("--file", tmp_path)

    assert status == 1
    assert "cannot be read" in reason(report)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads files whatever their mode, so chmod 000 cannot make one unreadable",
)
def test_unreadable_heartbeat_is_unhealthy(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat())
    path.chmod(0)
    try:
        status, report = check("--file", path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)

    assert status == 1
    assert "cannot be read" in reason(report)


# --- Readiness -------------------------------------------------------------------------------


def test_ready_needs_status_running_and_a_fresh_success(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat())

    status, report = check("--file", path, "--ready")

    assert status == 0
    assert [c["name"] for c in report["checks"]] == ["heartbeat", "ready"]
    assert report["checks"][1]["last_success_age_seconds"] >= 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"status": "starting"}, "service is starting", id="starting"),
        pytest.param({"status": "stopping"}, "service is stopping", id="stopping"),
        pytest.param({"last_success_ts": None}, "no successful iteration yet", id="no-success"),
        pytest.param({"last_success_ts": "now"}, "no successful iteration yet", id="bad-success"),
        pytest.param({"last_success_ts": -100.0}, "no successful iteration yet", id="negative"),
        pytest.param({"last_success_ago": 120}, "limit 30s", id="stale-success"),
        pytest.param({"last_success_ago": -600}, "last success", id="future-success"),
    ],
)
def test_ready_fails_without_a_running_service_and_recent_success(
    check: Check, tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    if "last_success_ago" in changes:  # relative to the test's run, not its collection
        changes = {"last_success_ts": time.time() - changes["last_success_ago"]}
    path = write(tmp_path / "hb.json", beat(**changes))

    status, report = check("--file", path, "--ready")

    assert status == 1
    heartbeat, ready = report["checks"]
    assert heartbeat["status"] == "ok"  # alive, just not ready
    assert ready["status"] == "fail"
    assert expected in ready["reason"]


def test_ready_uses_the_max_age_option_for_the_success_too(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(last_success_ts=time.time() - 60))

    assert check("--file", path, "--ready")[0] == 1
    assert check("--file", path, "--ready", "--max-age", "120")[0] == 0


DB_OK = {"name": "database", "status": "ok", "latency_ms": 1.5}
CACHE_DOWN = {"name": "cache", "status": "fail", "latency_ms": 0.25, "reason": "refused"}


def test_ready_lists_the_services_checks_with_their_own_latency(
    check: Check, tmp_path: Path
) -> None:
    path = write(tmp_path / "hb.json", beat(checks=[DB_OK]))

    status, report = check("--file", path, "--ready")

    assert status == 0
    assert [c["name"] for c in report["checks"]] == ["heartbeat", "ready", "database"]
    assert report["checks"][2] == DB_OK


def test_ready_fails_when_one_of_the_services_checks_fails(check: Check, tmp_path: Path) -> None:
    path = write(tmp_path / "hb.json", beat(checks=[DB_OK, CACHE_DOWN]))

    status, report = check("--file", path, "--ready")

    assert status == 1
    assert [c["status"] for c in report["checks"]] == ["ok", "ok", "ok", "fail"]
    assert report["checks"][3] == CACHE_DOWN


def test_liveness_ignores_the_services_readiness_checks(check: Check, tmp_path: Path) -> None:
    """A dependency that is down must not get the service restarted."""
    path = write(tmp_path / "hb.json", beat(checks=[CACHE_DOWN]))

    status, report = check("--file", path)

    assert status == 0
    assert [c["name"] for c in report["checks"]] == ["heartbeat"]


@pytest.mark.parametrize(
    "checks",
    [
        pytest.param({"database": "ok"}, id="not-a-list"),
        pytest.param(["database"], id="entry-not-an-object"),
        pytest.param([{"status": "ok", "latency_ms": 1}], id="no-name"),
        pytest.param([{"name": 7, "status": "ok", "latency_ms": 1}], id="name-not-a-string"),
        pytest.param([{**DB_OK, "status": "up"}], id="unknown-status"),
        pytest.param([{**DB_OK, "latency_ms": "1"}], id="latency-a-string"),
        pytest.param([{**DB_OK, "latency_ms": None}], id="latency-null"),
        pytest.param([{**DB_OK, "latency_ms": -1}], id="latency-negative"),
        pytest.param([{**CACHE_DOWN, "reason": ["refused"]}], id="reason-not-a-string"),
        pytest.param([DB_OK, None], id="one-bad-entry"),
    ],
)
def test_malformed_checks_in_the_heartbeat_make_it_unready(
    check: Check, tmp_path: Path, checks: object
) -> None:
    path = write(tmp_path / "hb.json", beat(checks=checks))

    status, report = check("--file", path, "--ready")

    assert status == 1
    assert report["checks"][2] == {
        "name": "checks",
        "status": "fail",
        "reason": "heartbeat checks are malformed",
        "latency_ms": report["checks"][0]["latency_ms"],
    }
    assert check("--file", path)[0] == 0  # still alive


# --- Finding the file ------------------------------------------------------------------------


def test_file_option_beats_app_heartbeat_file(
    check: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_HEARTBEAT_FILE", str(tmp_path / "missing.json"))
    path = write(tmp_path / "hb.json", beat())

    status, report = check("--file", path)

    assert status == 0
    assert report["checks"][0]["path"] == str(path)


def test_app_heartbeat_file_is_used_without_the_option(
    check: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "hb.json", beat())
    monkeypatch.setenv("APP_HEARTBEAT_FILE", str(path))

    status, report = check()

    assert status == 0
    assert report["checks"][0]["path"] == str(path)


@pytest.mark.parametrize(
    ("name", "text", "heartbeat"),
    [
        pytest.param(".env", "APP_HEARTBEAT_FILE=dotenv.json\n", "dotenv.json", id="dotenv"),
        pytest.param("config.yml", "heartbeat_file: yaml.json\n", "yaml.json", id="config-yml"),
    ],
)
def test_without_app_heartbeat_file_the_service_config_is_read(
    check: Check, tmp_path: Path, name: str, text: str, heartbeat: str
) -> None:
    (tmp_path / name).write_text(text)
    write(tmp_path / heartbeat, beat())

    status, report = check()

    assert status == 0
    assert report["checks"][0]["path"] == heartbeat


def test_default_heartbeat_file_is_in_the_temp_dir(
    check: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = write(tmp_path / "tmp" / "app-heartbeat.json", beat())

    status, report = check()

    assert status == 0
    assert report["checks"][0]["path"] == str(path)


def test_invalid_service_config_is_unhealthy_with_the_problem(check: Check, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("heartbeat_file: 7\n")

    status, report = check()

    assert status == 1
    assert "configuration invalid" in reason(report)
    assert "heartbeat_file=7" in reason(report)


# --- Command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--bogus"], "unknown argument '--bogus'", id="unknown-option"),
        pytest.param(["extra"], "unknown argument 'extra'", id="positional"),
        pytest.param(["--ready=yes"], "unknown argument '--ready=yes'", id="ready-with-value"),
        pytest.param(["--max-age", "soon"], "--max-age expects a number", id="max-age-junk"),
        pytest.param(["--max-age", "0"], "got '0'", id="max-age-zero"),
        pytest.param(["--max-age=-5"], "got '-5'", id="max-age-negative"),
        pytest.param(["--max-age", "nan"], "got 'nan'", id="max-age-nan"),
        pytest.param(["--max-age", "inf"], "got 'inf'", id="max-age-inf"),
        pytest.param(["--max-age"], "--max-age needs a value", id="max-age-no-value"),
        pytest.param(["--file"], "--file needs a value", id="file-no-value"),
    ],
)
def test_usage_error_is_unhealthy_with_a_json_reason(
    check: Check, args: list[str], expected: str
) -> None:
    status, report = check(*args)

    assert status == 1
    assert report["checks"][0]["name"] == "usage"
    assert expected in reason(report)


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(capsys: pytest.CaptureFixture[str], option: str) -> None:
    assert health.main([option]) == 0

    out = capsys.readouterr().out
    assert out.startswith("usage: app-health")
    for name in ("--file", "--max-age", "--ready"):
        assert name in out


# --- The real console script -----------------------------------------------------------------


def run_script(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    """Run `app-health`; return its status, its report and its stderr."""
    result = subprocess.run(
        [str(BIN / "app-health"), *map(str, args)],
        env=dict(os.environ) if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, parse_report(result.stdout), result.stderr


@pytest.mark.parametrize(
    ("content", "args", "status", "expected"),
    [
        pytest.param(beat, [], 0, "", id="fresh"),
        pytest.param(lambda: beat(ts=time.time() - 300), [], 1, "is stale", id="stale"),
        pytest.param(None, [], 1, "is missing", id="missing"),
        pytest.param(lambda: b"{", [], 1, "is not valid JSON", id="malformed"),
        pytest.param(lambda: beat(ts=10**400), [], 1, "ts is missing", id="huge-int-ts"),
        pytest.param(beat, ["--max-age", "x"], 1, "--max-age expects", id="usage"),
    ],
)
def test_console_script_prints_one_json_line_and_no_traceback(
    tmp_path: Path,
    content: Callable[[], dict[str, Any] | bytes] | None,
    args: list[str],
    status: int,
    expected: str,
) -> None:
    """`content` makes the file at run time: a heartbeat made at collection may be stale."""
    path = tmp_path / "hb.json"
    if content is not None:
        write(path, content())

    code, report, stderr = run_script(*args, env={**os.environ, "APP_HEARTBEAT_FILE": str(path)})

    assert code == status
    assert stderr == ""
    assert expected in reason(report)


def test_console_script_finds_the_file_through_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_HEARTBEAT_FILE=beat.json\n")
    write(tmp_path / "beat.json", beat())

    code, report, stderr = run_script(cwd=tmp_path)

    assert (code, stderr) == (0, "")
    assert report["checks"][0]["path"] == "beat.json"


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    """`python -m app.health` works too, for images without the console script."""
    path = write(tmp_path / "hb.json", beat())
    result = subprocess.run(
        [sys.executable, "-m", "app.health", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert parse_report(result.stdout)["status"] == "ok"


IMPORTS_SCRIPT = """
import sys
before = set(sys.modules)
import app.health
status = app.health.main([])
loaded = sorted(set(sys.modules) - before)
import json
print(json.dumps({"status": status, "loaded": loaded, "all": sorted(sys.modules)}))
"""


def test_health_imports_only_the_standard_library(tmp_path: Path) -> None:
    """Docker and Kubernetes run it every few seconds: no YAML, no Prometheus client."""
    path = write(tmp_path / "hb.json", beat())
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT],
        env={**os.environ, "APP_HEARTBEAT_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.stderr == ""
    report_line, imports_line = result.stdout.splitlines()
    assert parse_report(report_line + "\n")["status"] == "ok"
    imports = json.loads(imports_line)
    assert imports["status"] == 0
    package = health.__name__.partition(".")[0]  # app, until renamed
    allowed = {*sys.stdlib_module_names, package, "coverage"}  # coverage: when tests measure it
    outside = [name for name in imports["loaded"] if name.split(".")[0] not in allowed]
    assert outside == []
    assert "app.health" in imports["loaded"]
    assert "app.config" not in imports["all"]  # the config lookup is off the normal path
    assert "yaml" not in imports["all"]
    assert "prometheus_client" not in imports["all"]


# --- Against a running service ---------------------------------------------------------------


def test_health_follows_a_running_service_until_it_stops(
    start: Callable[..., Running], service_env: dict[str, str], tmp_path: Path
) -> None:
    service = start(f"app-{prefer('sync')}")
    started = service.wait_for_event("startup_success")

    code, report, stderr = run_script(env=service_env, cwd=tmp_path)
    assert (code, stderr) == (0, ""), report
    assert report["run_id"] == started["run_id"]
    assert report["config_hash"] == started["config_hash"]
    assert report["service"] == "python-service"
    assert report["checks"][0]["pid"] == service.proc.pid

    wait_until(lambda: run_script("--ready", env=service_env, cwd=tmp_path)[0] == 0)

    service.proc.send_signal(signal.SIGTERM)
    assert service.wait() == 0
    code, report, _ = run_script(env=service_env, cwd=tmp_path)
    assert code == 1
    assert "is missing" in reason(report)
