"""Fuzzing the loader: any env map, `.env` file and YAML file give a Config or a ConfigError.

Hypothesis makes the inputs: APP_* names of real settings and junk names with any text,
huge numbers, nan/inf; `.env` files of shell-like lines or raw bytes; YAML documents dumped
from random data (aliases included) or written by hand (tags, hex integers, deep nesting),
cut and spliced, or plain binary junk. Whatever comes in, `load_config()` returns a
LoadedConfig whose values obey their rules, or raises ConfigError with a non-empty list of
problems, never anything else (SPEC §3: a bad configuration is exit 78, never a traceback).
The quick run tries QUICK_EXAMPLES inputs; the slow one (.ci/run) SLOW_PARTS x SLOW_EXAMPLES.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml
from conftest import BIN, prefer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.config import (
    LOG_LEVELS,
    Config,
    ConfigError,
    LoadedConfig,
    env_name,
    load_config,
    redacted,
)

QUICK_EXAMPLES = 50  # with coverage on, ~50 ms each; the slow run does 5,000
SLOW_EXAMPLES = 1000  # per part: the slow run has SLOW_PARTS parts, which xdist spreads
SLOW_PARTS = 5
FIELDS = [f.name for f in fields(Config)]
ENV_NAMES = [env_name(name) for name in FIELDS]
HASH = re.compile(r"sha256:[0-9a-f]{64}")
SLOW = pytest.mark.slow
SOURCE_LABELS = {"defaults", "yaml", "dotenv", "env"}

FUZZ = settings(
    deadline=None,  # file I/O per example: timing varies with the machine's load
    database=None,  # nothing kept between runs; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow],  # recursive YAML data is slow to generate
)

# --- Values -----------------------------------------------------------------------------------

NASTY_TEXT = [
    "", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400",
    "0", "-0", "+0", "65535", "65536", "-1", "9" * 5000, "0x10", "0o7", "1_000", "1.5", ".5",
    "5.", " 7 ", "\t8\n", "true", "FALSE", "Yes", "off", "2", "\u0663", "\uff15", "\u00a05",
    "5\u2003", "\x00", "\udcff", "DEBUG", "warn", "loud", "json", "TEXT", "http://x",
    "https://", "ftp://x", "prod", "Prod", "a\nb", "\u00e9t\u00e9", "\U0001f642", "\u202e",
    "~", "/", ".", "***", "'quoted'", '"quoted"', "# comment", "${HOME}",
]  # fmt: skip
GOOD_TEXT = [
    "8000", "0", "1.5", "30", "true", "off", "INFO", "debug", "json", "text", "prod", "stg",
    "http://pushgateway:9091", "/tmp/hb.json", "billing", "1.2.3",
]  # fmt: skip
env_values = st.one_of(
    st.sampled_from(GOOD_TEXT),
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=30),
    st.integers().map(str),
    st.integers(min_value=10**15, max_value=10**60).map(str),
    st.floats().map(str),
    st.floats().map(lambda x: f"{x:e}"),
)
env_names = st.one_of(
    st.sampled_from(ENV_NAMES),
    st.from_regex(r"APP_[A-Z0-9_]{0,14}", fullmatch=True),
    st.sampled_from(["APP_", "APP_METRICS_PORT ", "app_metrics_port", "PATH", "HOME"]),
    st.text(max_size=12),
)
environs = st.dictionaries(env_names, env_values, max_size=10)

# --- .env files -------------------------------------------------------------------------------

dotenv_names = st.one_of(
    st.sampled_from(ENV_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
)
dotenv_lines = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", dotenv_names, env_values),
    st.builds(lambda k, v: f"export {k} = {v}", dotenv_names, env_values),
    st.builds(lambda k, v: f'{k}="{v}" # note', dotenv_names, env_values),
    st.builds(lambda k, v: f"{k}='{v}'", dotenv_names, env_values),
    st.builds(lambda k, v: f"{k}={v} # comment", dotenv_names, env_values),
    st.sampled_from(["", "# comment", "   ", "=", "KEY", "export", "\ufeffAPP_ENV=x", "A=\\"]),
    st.text(max_size=40),
)
dotenv_texts = st.builds(
    lambda lines, newline: newline.join(lines),
    st.lists(dotenv_lines, max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
dotenv_files = st.one_of(
    dotenv_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    dotenv_texts.map(lambda text: text.encode("utf-16", "surrogatepass")),
    st.binary(max_size=200),
)

# --- YAML files -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(GOOD_TEXT),
    st.sampled_from(NASTY_TEXT),
    st.binary(max_size=10),
    st.dates(),
    st.datetimes(),
)
keys = st.one_of(
    st.sampled_from(FIELDS),
    st.text(max_size=15),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def dumped_documents(draw: st.DrawFn) -> str:
    """YAML that PyYAML writes: mappings of settings (or anything), some values shared (aliases)."""
    document = draw(st.one_of(st.dictionaries(keys, values, max_size=8), values))
    if isinstance(document, dict) and draw(st.booleans()):
        shared = draw(st.lists(values, min_size=1, max_size=3))
        for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
            document[key] = shared  # the same object twice: PyYAML writes &id001 / *id001
        document["unused"] = [shared, shared]
    style = draw(st.sampled_from([None, True, False]))
    return yaml.safe_dump(document, default_flow_style=style, allow_unicode=draw(st.booleans()))


def nested(depth: int, leaf: str = "x") -> str:
    return "[" * depth + leaf + "]" * depth


TAGS = ["int", "float", "bool", "null", "str", "binary", "timestamp", "set", "omap", "pairs"]
TAGS += ["seq", "map", "merge", "value", "python/none", "python/object/apply:os.system"]
HAND_WRITTEN = [
    "metrics_port: 0x" + "f" * 4000,  # a hex int too large for str()/repr()
    "loop_sleep_seconds: 0b" + "1" * 15000,
    "metrics_port: 1:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0",
    "? 0x" + "f" * 4000 + "\n: 1",  # the same as a key
    "? [a, b]\n: 1",
    "service_name: &a [*a]",  # a list that contains itself
    "base: &b {service_name: x, env: prod}\n<<: *b",
    "<<: 5",
    "service_name: !!binary aGVsbG8=",
    "service_name: !!binary '!!!'",
    "version: 2001-12-14",
    "version: !!timestamp 2001-13-45",
    "commit: !!python/object/apply:os.system ['true']",
    "metrics_enabled: !!set {a, b}",
    "env: !!omap [a: 1, b: 2]",
    "service_name: !!float 1e999",
    "metrics_port: .nan",
    "metrics_port: !!int '99999999999999999999999999'",
    "metrics_port: 8000\nmetrics_port: 9000",
    "---\nenv: a\n---\nenv: b",
    "%YAML 1.1\n---\nenv: prod",
    "%YAML 9.9\n---\nenv: prod",
    "env: 'unterminated",
    "\ufeffservice_name: bom",
    "service_name: \x00",
    "\t- tab",
    "a: b: c",
    "*undefined_alias",
    "&anchor",
    "!!",
    "[",
    "{",
    "null",
    "~",
    "42",
    "- a\n- b",
]


@st.composite
def hand_written(draw: st.DrawFn) -> str:
    """Documents no dumper writes: tags, merge keys, huge integers, deep nesting."""
    kind = draw(
        st.sampled_from(["fixed", "tagged", "deep-value", "deep-key", "deep-document", "laughs"])
    )
    # Shallow here, as deep documents take up to a second each to parse: the deep ones
    # (1,200 levels, and 100,000 that crash libyaml) are the explicit tests at the end.
    depth = draw(st.integers(min_value=1, max_value=60))
    field = draw(st.sampled_from(FIELDS))
    if kind == "tagged":  # PyYAML's constructors trust the tag: `!!int ""` raised IndexError
        tag = draw(st.sampled_from(TAGS))
        value = draw(st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=10)))
        return f"{field}: !!{tag} {json.dumps(value)}"
    if kind == "deep-value":
        return f"{field}: {nested(depth)}"
    if kind == "deep-key":
        return f"? {nested(depth)}\n: 1"
    if kind == "deep-document":
        return nested(depth)
    if kind == "laughs":  # aliases of aliases: 4**levels leaves, few bytes
        levels = draw(st.integers(min_value=1, max_value=8))
        lines = ["l0: &l0 [x, x, x, x]"]
        for n in range(1, levels + 1):
            lines.append(f"l{n}: &l{n} [*l{n - 1}, *l{n - 1}, *l{n - 1}, *l{n - 1}]")
        return "\n".join([*lines, f"{field}: *l{levels}"])
    return draw(st.sampled_from(HAND_WRITTEN))


@st.composite
def mangled(draw: st.DrawFn, documents: st.SearchStrategy[str]) -> str:
    """A document cut, spliced or with junk inserted."""
    text = draw(documents)
    start = draw(st.integers(min_value=0, max_value=len(text)))
    end = draw(st.integers(min_value=start, max_value=len(text)))
    junk = draw(st.one_of(st.text(max_size=10), st.sampled_from([":", "- ", "\n  ", "&a", "*a"])))
    return text[:start] + junk + text[end:]


yaml_texts = st.one_of(
    dumped_documents(),
    hand_written(),
    mangled(dumped_documents()),
    mangled(hand_written()),
    st.text(max_size=60),
)
yaml_files = st.one_of(
    yaml_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    yaml_texts.map(lambda text: text.encode("utf-16")),
    st.binary(max_size=200),
)

# --- One case: which sources exist, and how they are named ----------------------------------

FILE_MODES = ["absent", "file", "missing", "directory"]


@dataclass(frozen=True)
class Case:
    environ: dict[str, str]
    yaml_mode: str  # absent, file, missing, directory
    yaml_named_by: str  # "argument" (--config) or "env" (APP_CONFIG_FILE)
    yaml_bytes: bytes
    dotenv_mode: str  # absent, file, missing, directory, empty-name
    dotenv_bytes: bytes


cases = st.builds(
    Case,
    environ=environs,
    yaml_mode=st.sampled_from(FILE_MODES),
    yaml_named_by=st.sampled_from(["argument", "env"]),
    yaml_bytes=yaml_files,
    dotenv_mode=st.sampled_from([*FILE_MODES, "empty-name"]),
    dotenv_bytes=dotenv_files,
)


def load_case(case: Case, workdir: Path) -> LoadedConfig | ConfigError:
    """Write the case's files into `workdir` and load; a ConfigError is returned, not raised."""
    environ = {
        k: v for k, v in case.environ.items() if k not in ("APP_CONFIG_FILE", "APP_ENV_FILE")
    }
    config_file: str | None = None
    paths = {"file": "c.yml", "missing": "nowhere.yml", "directory": "."}
    if case.yaml_mode != "absent":
        (workdir / "c.yml").write_bytes(case.yaml_bytes)
        named = str(workdir / paths[case.yaml_mode])
        if case.yaml_named_by == "argument":
            config_file = named
        else:
            environ["APP_CONFIG_FILE"] = named
    if case.dotenv_mode == "empty-name":  # APP_ENV_FILE= means ./.env, which must then exist
        environ["APP_ENV_FILE"] = ""
    elif case.dotenv_mode != "absent":
        (workdir / "dot.env").write_bytes(case.dotenv_bytes)
        environ["APP_ENV_FILE"] = str(workdir / {**paths, "file": "dot.env"}[case.dotenv_mode])
    try:
        return load_config(config_file=config_file, environ=environ)
    except ConfigError as exc:
        return exc


def assert_valid(result: LoadedConfig | ConfigError) -> None:
    """A LoadedConfig whose values obey their rules, or a ConfigError listing problems."""
    if isinstance(result, ConfigError):
        assert isinstance(result.problems, list)
        assert result.problems
        assert all(isinstance(p, str) and p for p in result.problems)
        assert str(result) == "; ".join(result.problems)
        return
    config = result.config
    assert isinstance(config, Config)
    assert set(result.sources) == set(FIELDS)
    assert all(isinstance(w, str) for w in result.warnings)
    assert HASH.fullmatch(result.config_hash)
    assert set(result.config_source.split("+")) <= SOURCE_LABELS
    json.dumps(redacted(config), allow_nan=False)  # what startup_begin and --check-config show
    assert type(config.metrics_port) is int
    assert 0 <= config.metrics_port <= 65535
    assert type(config.max_consecutive_failures) is int
    assert config.max_consecutive_failures >= 0
    assert type(config.metrics_enabled) is bool
    for name in ("loop_sleep_seconds", "health_max_age_seconds", "shutdown_timeout_seconds"):
        value = getattr(config, name)
        assert type(value) is float, name
        assert math.isfinite(value), name
    assert config.loop_sleep_seconds >= 0
    assert config.health_max_age_seconds > 0
    assert config.shutdown_timeout_seconds > 0
    assert config.iteration_timeout_seconds >= 0
    assert config.log_level in LOG_LEVELS
    assert config.log_format in ("json", "text")
    assert re.fullmatch(r"[a-z][a-z0-9_-]*", config.env)
    assert config.service_name
    assert isinstance(config.heartbeat_file, Path)
    assert str(config.heartbeat_file).strip()


def run_case(base: Path, case: Case) -> None:
    with tempfile.TemporaryDirectory(dir=base) as workdir:
        result = load_case(case, Path(workdir))
    event("config error" if isinstance(result, ConfigError) else "valid config")  # statistics
    assert_valid(result)


@settings(FUZZ, max_examples=QUICK_EXAMPLES)
@given(case=cases)
def test_any_input_gives_a_config_or_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, case: Case
) -> None:
    run_case(tmp_path_factory.getbasetemp(), case)


@pytest.mark.slow
@pytest.mark.parametrize("part", range(SLOW_PARTS))
@settings(FUZZ, max_examples=SLOW_EXAMPLES)
@given(case=cases)
def test_any_input_gives_a_config_or_a_config_error_many_examples(
    tmp_path_factory: pytest.TempPathFactory, part: int, case: Case
) -> None:
    """SLOW_PARTS x SLOW_EXAMPLES inputs: CI runs at least 5,000."""
    run_case(tmp_path_factory.getbasetemp(), case)


# --- What the fuzzing found, kept as plain examples -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("metrics_port: 0x" + "f" * 4000, id="hex-int-too-long-for-repr"),
        pytest.param("service_name: 0b" + "1" * 15000, id="binary-int-for-a-string"),
        pytest.param("? 0x" + "f" * 4000 + "\n: 1", id="hex-int-key"),
        # Deep ones take seconds (PyYAML's scanner is quadratic in nesting): slow run only.
        pytest.param("service_name: " + nested(1200), id="deep-list-value", marks=SLOW),
        pytest.param("metrics_port: {a: " + nested(1200) + "}", id="deep-map-value", marks=SLOW),
        pytest.param('metrics_port: !!int ""', id="empty-int-tag"),
        pytest.param('metrics_port: !!int "-"', id="bare-sign-int-tag"),
        pytest.param("metrics_enabled: !!bool maybe", id="unknown-bool-tag"),
        pytest.param("version: !!timestamp yesterday", id="bad-timestamp-tag"),
    ],
)
def test_yaml_that_broke_the_loader_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "c.yml").write_text(text)

    with pytest.raises(ConfigError) as info:
        load_config(config_file=tmp_path / "c.yml", environ={})

    assert len(info.value.problems) == 1
    assert all(len(p) < 300 for p in info.value.problems)  # the value is shortened


DEEP_SCRIPT = """
import sys
from app.config import ConfigError, load_config
try:
    load_config(config_file=sys.argv[1], environ={})
except ConfigError as exc:
    print(exc.problems[0][:200])
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["value", "document"])
def test_yaml_nested_deeper_than_the_stack_is_a_config_error_not_a_crash(
    tmp_path: Path, where: str
) -> None:
    """libyaml (CSafeLoader) recurses in C per level: 100,000 `[` overflow the C stack."""
    depth = 100_000
    text = nested(depth) if where == "document" else "service_name: " + nested(depth)
    (tmp_path / "deep.yml").write_text(text)

    result = subprocess.run(
        [sys.executable, "-c", DEEP_SCRIPT, str(tmp_path / "deep.yml")],
        env={k: v for k, v in os.environ.items() if not k.startswith("APP_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, f"status {result.returncode}: {result.stderr[-500:]}"
    assert result.stderr == ""
    assert "YAML file" in result.stdout


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('metrics_port: !!int ""\n', id="empty-int-tag"),
        pytest.param("metrics_port: 0x" + "f" * 4000 + "\n", id="hex-int-too-long-for-repr"),
    ],
)
def test_service_with_such_a_config_file_exits_78_with_one_json_record(
    tmp_path: Path, text: str
) -> None:
    """What the user sees: `config_invalid` and exit 78, not a traceback and exit 1."""
    (tmp_path / "config.yml").write_text(text)

    result = subprocess.run(
        [str(BIN / f"app-{prefer('sync')}"), "--check-config"],
        env={k: v for k, v in os.environ.items() if not k.startswith("APP_")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (result.returncode, result.stderr) == (78, "")
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["event"] == "config_invalid"
    assert len(record["problems"]) == 1
