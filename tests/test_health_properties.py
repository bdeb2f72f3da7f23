"""Property tests of `app-health`: 0 only for a fresh, valid heartbeat; else 1 with a reason.

Hypothesis writes heartbeat files: fresh ones with any identity, extra keys, max age and
`--max-age`; stale ones; ones from the future (clock skew, see FUTURE_TOLERANCE_SECONDS);
wrong types, missing fields, truncated JSON, random bytes, deep nesting; and files that are
not plain files (symlinks dangling, looping or valid, directories, FIFOs, unreadable modes).
Every run prints exactly one JSON line and nothing on stderr.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import health
from app.health import FUTURE_TOLERANCE_SECONDS, MAX_FILE_BYTES, STATUSES

EXAMPLES = 60  # per property; each costs ~10 ms with coverage on
NO_SUCH_PID = 2**30  # above Linux's largest pid_max (2**22): never a live process
REQUIRED = ("ts", "pid", "max_age_seconds", "status")
IDENTITY = ("service", "env", "version", "commit", "run_id", "config_hash")
MARGIN = 0.5  # seconds kept from every boundary: the clock moves while the check runs

PROPERTIES = settings(
    max_examples=EXAMPLES,
    deadline=None,  # file I/O per example
    database=None,  # nothing kept between runs; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
identities = st.fixed_dictionaries(
    {},
    optional={key: st.one_of(st.text(max_size=20), json_values) for key in IDENTITY},
)
extra_keys = st.dictionaries(st.text(max_size=10).filter(lambda k: k not in REQUIRED), json_values)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh directory per example (Hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory(prefix="health-") as name:
        yield Path(name)


def check(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """Run app-health in this process: its status and its one JSON line; stderr must be empty."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = health.main([str(arg) for arg in args])
    assert err.getvalue() == ""
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    report: dict[str, Any] = json.loads(lines[0])
    assert report["status"] == ("ok" if status == 0 else "fail")
    assert status in (0, 1)
    for item in report["checks"]:
        assert ("reason" in item) == (item["status"] == "fail"), item
        if "reason" in item:
            assert isinstance(item["reason"], str)
            assert item["reason"]
    return status, report


def reasons(report: dict[str, Any]) -> str:
    return " | ".join(str(c.get("reason", "")) for c in report["checks"])


def heartbeat(age: float, max_age: float, **changes: Any) -> dict[str, Any]:
    """A heartbeat `age` seconds old (negative: from the future) written by this process."""
    now = time.time()
    data: dict[str, Any] = {
        "pid": os.getpid(),
        "status": "running",
        "ts": now - age,
        "last_iteration_ts": now - age,
        "last_success_ts": now - age,
        "iterations": 3,
        "max_age_seconds": max_age,
    }
    return data | changes


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


# --- Fresh and valid: healthy ----------------------------------------------------------------


@st.composite
def fresh_cases(draw: st.DrawFn) -> tuple[float, float | None, float, dict[str, Any]]:
    """(max_age in the file, --max-age or None, age, other keys) of a heartbeat that is fresh."""
    file_max_age = draw(st.floats(min_value=2 * MARGIN + 1, max_value=1e6))
    option = draw(st.none() | st.floats(min_value=2 * MARGIN + 1, max_value=1e6))
    limit = option or file_max_age
    # Up to FUTURE_TOLERANCE_SECONDS in the future is not skew, just two clocks' readings.
    age = draw(st.floats(min_value=-FUTURE_TOLERANCE_SECONDS + MARGIN, max_value=limit - MARGIN))
    keys = draw(identities) | draw(extra_keys)
    keys["status"] = draw(st.sampled_from(STATUSES))
    keys["pid"] = draw(st.sampled_from([os.getpid(), 1]))  # both alive (1 may be another user's)
    return file_max_age, option, age, keys


@PROPERTIES
@given(case=fresh_cases())
def test_fresh_valid_heartbeat_is_healthy(
    case: tuple[float, float | None, float, dict[str, Any]],
) -> None:
    file_max_age, option, age, keys = case
    with scratch_dir() as tmp:
        path = write_json(tmp / "hb.json", {**keys, **heartbeat(age, file_max_age, **keys)})
        args: list[str | Path] = ["--file", path]
        if option:
            args += ["--max-age", repr(option)]

        status, report = check(*args)

    assert status == 0, report
    [beat] = report["checks"]
    assert beat["name"] == "heartbeat"
    assert beat["max_age_seconds"] == (option or file_max_age)
    assert -FUTURE_TOLERANCE_SECONDS <= beat["age_seconds"] <= beat["max_age_seconds"]
    for key in IDENTITY:  # strings are shown, anything else is null
        shown = keys.get(key)
        assert report[key] == (shown if isinstance(shown, str) else None)


@PROPERTIES
@given(
    status=st.sampled_from(STATUSES),
    success_age=st.none() | st.floats(min_value=-1e6, max_value=1e6),
    age=st.floats(min_value=0, max_value=10),
)
def test_ready_only_for_a_running_service_with_a_fresh_success(
    status: str, success_age: float | None, age: float
) -> None:
    max_age = 30.0
    near = MARGIN  # keep clear of the boundaries, where the clock's progress decides
    if success_age is not None and any(
        abs(success_age - edge) < near for edge in (-FUTURE_TOLERANCE_SECONDS, max_age)
    ):
        return
    with scratch_dir() as tmp:
        success = None if success_age is None else time.time() - success_age
        path = write_json(
            tmp / "hb.json", heartbeat(age, max_age, status=status, last_success_ts=success)
        )

        code, report = check("--file", path, "--ready")

    fresh_success = success_age is not None and (
        -FUTURE_TOLERANCE_SECONDS <= success_age <= max_age
    )
    assert (code == 0) == (status == "running" and fresh_success), report
    assert [c["name"] for c in report["checks"]] == ["heartbeat", "ready"]
    assert report["checks"][0]["status"] == "ok"  # alive either way


# --- Clock skew: deliberately unhealthy beyond the tolerance ---------------------------------


@PROPERTIES
@given(ahead=st.floats(min_value=0, max_value=1e6))
def test_heartbeat_from_the_future_is_healthy_only_within_the_tolerance(ahead: float) -> None:
    """Service and check read one clock: more than 2 s ahead means it was stepped back."""
    if abs(ahead - FUTURE_TOLERANCE_SECONDS) < MARGIN:
        return  # at the boundary the clock's progress during the check decides
    with scratch_dir() as tmp:
        path = write_json(tmp / "hb.json", heartbeat(-ahead, 30.0))

        status, report = check("--file", path)

    if ahead < FUTURE_TOLERANCE_SECONDS:
        assert status == 0, report
    else:
        assert status == 1
        assert "in the future: clock stepped back?" in reasons(report)


# --- Everything else: unhealthy with a reason -------------------------------------------------

not_a_number = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.floats(max_value=-1e-6),  # negative
    st.floats(min_value=1e12),  # beyond year 33658, or inf
    st.just(math.nan),
    st.integers(min_value=10**12),
    st.integers(max_value=-1),
    st.just(10**400),  # too large for float()
)
not_a_pid = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.floats(),
    st.integers(max_value=0),
    st.integers(min_value=2**31),
    st.lists(st.integers(), max_size=2),
)
not_a_status = st.one_of(
    st.text(max_size=10).filter(lambda s: s not in STATUSES),
    st.sampled_from(["RUNNING", "running ", "ok", ""]),
    json_values.filter(lambda v: v not in STATUSES),
)


@dataclass(frozen=True)
class Bad:
    """How a heartbeat is wrong; `build()` writes it relative to the clock at check time."""

    kind: str
    age: float  # of the heartbeat, in seconds (negative: from the future)
    max_age: float
    identity: dict[str, Any]
    change: dict[str, Any]  # keys replaced by wrong values
    gone: frozenset[str]  # keys left out
    cut: float  # where truncation cuts, as a fraction of the length
    raw: bytes  # random bytes, or a list nested that deep

    def build(self) -> tuple[bytes, str]:
        """The file's bytes, and a fragment the reason must contain."""
        beat = heartbeat(self.age, self.max_age) | self.identity | self.change
        beat = {key: value for key, value in beat.items() if key not in self.gone}
        data = json.dumps(beat).encode()
        expected = {
            "stale": "is stale",
            "future": "in the future",
            "process-gone": "is gone",
            "wrong-type": next(iter(self.change), ""),
            "not-an-object": "is not a JSON object",
            "truncated": "is not valid JSON",
            "not-utf8": "is not valid JSON",
            "too-large": "is larger than",
        }.get(self.kind, "heartbeat file")
        if self.kind == "not-an-object":
            data = self.raw
        elif self.kind == "truncated":
            data = data[: int(len(data) * self.cut)]
        elif self.kind == "random-bytes":
            data = self.raw
        elif self.kind == "not-utf8":  # (UTF-16 and UTF-32 are valid: json detects them)
            data = data[:-1] + b', "note": "caf\xe9"}'  # Latin-1
        elif self.kind == "deep":
            depth = len(self.raw)
            data = b"[" * depth + b"]" * depth
        elif self.kind == "too-large":
            data += b" " * (MAX_FILE_BYTES + 1 - len(data))
        return data, expected


@st.composite
def bad_heartbeats(draw: st.DrawFn) -> Bad:
    kind = draw(
        st.sampled_from(
            [
                "stale",
                "future",
                "process-gone",
                "wrong-type",
                "missing-fields",
                "not-an-object",
                "truncated",
                "random-bytes",
                "not-utf8",
                "deep",
                "too-large",
            ]
        )
    )
    max_age = draw(st.floats(min_value=1, max_value=1e6))
    age = draw(st.floats(min_value=0, max_value=max_age - MARGIN))  # fresh, unless...
    if kind == "stale":
        age = draw(st.floats(min_value=max_age + MARGIN, max_value=1e9))
    if kind == "future":
        age = -draw(st.floats(min_value=FUTURE_TOLERANCE_SECONDS + MARGIN, max_value=1e9))
    change: dict[str, Any] = {}
    if kind == "process-gone":
        change = {"pid": NO_SUCH_PID}
    if kind == "wrong-type":
        key = draw(st.sampled_from(REQUIRED))
        change = {key: draw({"pid": not_a_pid, "status": not_a_status}.get(key, not_a_number))}
    gone: frozenset[str] = frozenset()
    if kind == "missing-fields":
        gone = frozenset(draw(st.sets(st.sampled_from(REQUIRED), min_size=1)))
    raw = b""
    if kind == "not-an-object":
        raw = json.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict)))).encode()
    if kind == "random-bytes":
        raw = draw(st.binary(max_size=100))
    if kind == "deep":
        raw = b"x" * draw(st.integers(min_value=1, max_value=200_000))
    return Bad(
        kind=kind,
        age=age,
        max_age=max_age,
        identity=draw(identities),
        change=change,
        gone=gone,
        cut=draw(st.floats(min_value=0, max_value=0.999)),
        raw=raw,
    )


@PROPERTIES
@given(bad=bad_heartbeats(), ready=st.booleans())
def test_unhealthy_heartbeat_exits_1_with_a_json_reason(bad: Bad, ready: bool) -> None:
    with scratch_dir() as tmp:
        path = tmp / "hb.json"
        data, fragment = bad.build()
        path.write_bytes(data)

        status, report = check("--file", path, *(["--ready"] if ready else []))

    assert status == 1, (bad.kind, report)
    assert report["checks"][0]["name"] == "heartbeat"
    assert report["checks"][0]["status"] == "fail"
    assert fragment in reasons(report), (bad.kind, report)


# --- Files that are not plain files ----------------------------------------------------------

SHAPES = [
    "file",
    "symlink",
    "symlink-chain",
    "dangling-symlink",
    "symlink-loop",
    "directory",
    "symlink-to-directory",
    "missing",
    "under-a-file",  # a path whose parent is a file: ENOTDIR
]


def make(shape: str, tmp: Path, target: Path) -> Path:
    """Put `shape` at a path, with `target` (a file) where a file is meant; return the path."""
    path = tmp / "hb.json"
    if shape == "file":
        return target
    if shape == "symlink":
        path.symlink_to(target)
    elif shape == "symlink-chain":
        (tmp / "link").symlink_to(target)
        path.symlink_to(tmp / "link")
    elif shape == "dangling-symlink":
        path.symlink_to(tmp / "nowhere.json")
    elif shape == "symlink-loop":
        path.symlink_to(tmp / "loop")
        (tmp / "loop").symlink_to(path)
    elif shape == "directory":
        path.mkdir()
    elif shape == "symlink-to-directory":
        (tmp / "dir").mkdir()
        path.symlink_to(tmp / "dir")
    elif shape == "under-a-file":
        return target / "hb.json"
    return path


@PROPERTIES
@given(shape=st.sampled_from(SHAPES), fresh=st.booleans(), ready=st.booleans())
def test_only_a_readable_fresh_file_or_a_link_to_one_is_healthy(
    shape: str, fresh: bool, ready: bool
) -> None:
    with scratch_dir() as tmp:
        target = write_json(tmp / "target.json", heartbeat(0 if fresh else 3600, 30.0))
        path = make(shape, tmp, target)

        status, report = check("--file", path, *(["--ready"] if ready else []))

    healthy = fresh and shape in ("file", "symlink", "symlink-chain")
    assert (status == 0) == healthy, (shape, report)
    if not healthy:
        assert str(path) in reasons(report) or "stale" in reasons(report)


FIFO_SCRIPT = "import sys; from app.health import main; sys.exit(main(sys.argv[1:]))"


def test_fifo_instead_of_a_file_is_unhealthy_not_a_hang(tmp_path: Path) -> None:
    """open() of a FIFO with no writer blocks: the probe would time out instead of answering."""
    fifo = tmp_path / "hb.json"
    os.mkfifo(fifo)

    result = subprocess.run(
        [sys.executable, "-c", FIFO_SCRIPT, "--file", str(fifo)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )

    assert (result.returncode, result.stderr) == (1, "")
    assert "cannot be read" in json.loads(result.stdout)["checks"][0]["reason"]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads files whatever their mode, so no mode makes a heartbeat unreadable",
)
@PROPERTIES
@given(
    file_mode=st.sampled_from([0o000, 0o200, 0o300, 0o100]),
    dir_mode=st.sampled_from([0o700, 0o000, 0o600]),
)
def test_unreadable_heartbeat_is_unhealthy(file_mode: int, dir_mode: int) -> None:
    with scratch_dir() as tmp:
        folder = tmp / "run"
        folder.mkdir()
        path = write_json(folder / "hb.json", heartbeat(0, 30.0))
        path.chmod(file_mode)
        folder.chmod(dir_mode)
        try:
            status, report = check("--file", path)
        finally:
            folder.chmod(0o700)
            path.chmod(0o600)

    assert status == 1
    assert "cannot be read" in reasons(report) or "missing" in reasons(report)
