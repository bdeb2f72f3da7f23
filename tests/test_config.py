"""Configuration: sources and precedence, .env syntax, normalisation, errors, secrets, identity."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field, fields, make_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import COMMANDS, prefer

from app import config as config_module
from app.config import Config, ConfigError, LoadedConfig, is_secret, load_config, redacted

BIN = Path(sys.executable).parent
EXIT_CONFIG = 78
HASH = re.compile(r"sha256:[0-9a-f]{64}")


def problems_of(environ: dict[str, str], config_file: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config_file=config_file, environ=environ)
    return info.value.problems


def assert_reported(problems: list[str], expected: list[tuple[str, ...]]) -> None:
    """Each expected tuple of fragments is found within one problem, and nothing more."""
    assert len(problems) == len(expected), problems
    for fragments in expected:
        assert any(all(part in p for part in fragments) for p in problems), (fragments, problems)


# --- Sources and precedence ------------------------------------------------------------------


def test_defaults_apply_without_any_source() -> None:
    loaded = load_config(environ={})

    assert loaded.config.service_name == "python-service"
    assert loaded.config.metrics_port == 8000
    assert loaded.config.log_level == "INFO"
    assert loaded.config.metrics_enabled is True
    assert set(loaded.sources.values()) == {"default"}
    assert loaded.config_source == "defaults"
    assert loaded.warnings == []


@pytest.mark.parametrize(
    ("yaml_port", "dotenv_port", "env_port", "expected", "source"),
    [
        pytest.param("9001", None, None, 9001, "YAML file config.yml", id="yaml-over-default"),
        pytest.param(
            None, "9002", None, 9002, ".env file .env (APP_METRICS_PORT)", id="dotenv-over-default"
        ),
        pytest.param(
            "9001", "9002", None, 9002, ".env file .env (APP_METRICS_PORT)", id="dotenv-over-yaml"
        ),
        pytest.param(None, None, "9003", 9003, "env APP_METRICS_PORT", id="env-over-default"),
        pytest.param("9001", None, "9003", 9003, "env APP_METRICS_PORT", id="env-over-yaml"),
        pytest.param(None, "9002", "9003", 9003, "env APP_METRICS_PORT", id="env-over-dotenv"),
        pytest.param("9001", "9002", "9003", 9003, "env APP_METRICS_PORT", id="env-over-all"),
    ],
)
def test_higher_source_wins(
    tmp_path: Path,
    yaml_port: str | None,
    dotenv_port: str | None,
    env_port: str | None,
    expected: int,
    source: str,
) -> None:
    if yaml_port is not None:
        (tmp_path / "config.yml").write_text(f"metrics_port: {yaml_port}\n")
    if dotenv_port is not None:
        (tmp_path / ".env").write_text(f"APP_METRICS_PORT={dotenv_port}\n")
    environ = {} if env_port is None else {"APP_METRICS_PORT": env_port}

    loaded = load_config(environ=environ)

    assert loaded.config.metrics_port == expected
    assert loaded.sources["metrics_port"] == source


def test_dotenv_never_overrides_a_variable_set_in_the_environment(tmp_path: Path) -> None:
    """The .env value is not even validated: the process environment hides it entirely."""
    (tmp_path / ".env").write_text("APP_SERVICE_NAME=from-dotenv\nAPP_METRICS_PORT=not-a-port\n")

    loaded = load_config(environ={"APP_SERVICE_NAME": "from-env", "APP_METRICS_PORT": "9000"})

    assert loaded.config.service_name == "from-env"
    assert loaded.config.metrics_port == 9000
    assert loaded.sources["service_name"] == "env APP_SERVICE_NAME"


def test_app_env_file_names_the_dotenv_file_instead_of_the_local_one(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_SERVICE_NAME=local\n")
    other = tmp_path / "conf" / "prod.env"
    other.parent.mkdir()
    other.write_text("APP_SERVICE_NAME=named\n")

    loaded = load_config(environ={"APP_ENV_FILE": str(other)})

    assert loaded.config.service_name == "named"
    assert loaded.sources["service_name"] == f".env file {other} (APP_SERVICE_NAME)"
    assert loaded.warnings == []  # APP_ENV_FILE is a control variable, not an unknown setting


def test_app_config_file_names_the_yaml_file_instead_of_the_local_one(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("service_name: local\n")
    (tmp_path / "other.yml").write_text("service_name: named\n")

    loaded = load_config(environ={"APP_CONFIG_FILE": "other.yml"})

    assert loaded.config.service_name == "named"
    assert loaded.sources["service_name"] == "YAML file other.yml"
    assert loaded.warnings == []


def test_config_file_argument_beats_app_config_file(tmp_path: Path) -> None:
    (tmp_path / "from-env.yml").write_text("service_name: from-env-var\n")
    (tmp_path / "from-option.yml").write_text("service_name: from-option\n")

    loaded = load_config(
        config_file=tmp_path / "from-option.yml", environ={"APP_CONFIG_FILE": "from-env.yml"}
    )

    assert loaded.config.service_name == "from-option"
    assert loaded.sources["service_name"] == f"YAML file {tmp_path / 'from-option.yml'}"


def test_config_yml_in_the_working_directory_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("# settings\nservice_name: billing\nenv: stg\n")

    loaded = load_config(environ={})

    assert (loaded.config.service_name, loaded.config.env) == ("billing", "stg")
    assert loaded.config_source == "defaults+yaml"


def test_empty_yaml_file_sets_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("# every setting commented out\n")

    assert load_config(environ={}).config_source == "defaults"


def test_config_source_lists_every_contributing_source_lowest_first(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("service_name: billing\n")
    (tmp_path / ".env").write_text("APP_ENV=stg\n")

    loaded = load_config(environ={"APP_METRICS_PORT": "9000"})

    assert loaded.config_source == "defaults+yaml+dotenv+env"
    assert loaded.sources["service_name"] == "YAML file config.yml"
    assert loaded.sources["env"] == ".env file .env (APP_ENV)"
    assert loaded.sources["metrics_port"] == "env APP_METRICS_PORT"
    assert loaded.sources["log_level"] == "default"


def test_config_source_names_only_env_when_env_is_the_only_override() -> None:
    assert load_config(environ={"APP_ENV": "prod"}).config_source == "defaults+env"


# --- config_hash -----------------------------------------------------------------------------


def test_config_hash_is_sha256_hex_and_stable() -> None:
    first = load_config(environ={"APP_ENV": "prod"}).config_hash
    second = load_config(environ={"APP_ENV": "prod"}).config_hash

    assert HASH.fullmatch(first)
    assert first == second


def test_config_hash_changes_with_a_value() -> None:
    assert (
        load_config(environ={"APP_METRICS_PORT": "9000"}).config_hash
        != load_config(environ={"APP_METRICS_PORT": "9001"}).config_hash
    )


def test_config_hash_depends_on_values_not_on_their_source(tmp_path: Path) -> None:
    from_env = load_config(environ={"APP_SERVICE_NAME": "billing"}).config_hash
    (tmp_path / "config.yml").write_text("service_name: billing\n")

    assert load_config(environ={}).config_hash == from_env


# --- Secrets ---------------------------------------------------------------------------------

# No template setting is a secret; a user adds one as a field. Frozen slotted dataclasses cannot
# be patched, so this builds the subclass a user's edit amounts to.
SecretConfig: Any = make_dataclass(
    "SecretConfig", [("db_password", str, field(default=""))], bases=(Config,), frozen=True
)


@pytest.mark.parametrize(
    "name", ["db_password", "API_TOKEN", "client_secret", "signing_key", "sentry_dsn"]
)
def test_field_names_with_a_secret_marker_are_secret(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", [f.name for f in fields(Config)])
def test_template_settings_are_not_secret(name: str) -> None:
    assert not is_secret(name)


def test_redacted_hides_secret_values_and_keeps_the_rest() -> None:
    values = redacted(SecretConfig(db_password="hunter2", service_name="billing"))

    assert values["db_password"] == "***"
    assert values["service_name"] == "billing"
    assert isinstance(values["heartbeat_file"], str)  # JSON-ready
    assert "hunter2" not in json.dumps(values)


def test_redacted_shows_an_unset_secret_as_empty() -> None:
    assert redacted(SecretConfig())["db_password"] == ""


def test_config_hash_is_computed_on_redacted_secrets() -> None:
    """Rotating a password does not change the hash; changing a plain setting does."""

    def hash_of(**values: str) -> str:
        return LoadedConfig(SecretConfig(**values), {}, []).config_hash

    assert hash_of(db_password="old") == hash_of(db_password="new")
    assert hash_of(db_password="old") != hash_of(db_password="old", env="prod")


def test_bad_secret_value_is_reported_as_stars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat `port` as a secret marker so that a real setting goes through the loader as one."""
    monkeypatch.setattr(config_module, "SECRET_MARKERS", (*config_module.SECRET_MARKERS, "port"))

    problems = problems_of({"APP_METRICS_PORT": "hunter2"})

    assert_reported(problems, [("metrics_port=***", "env APP_METRICS_PORT", "an integer")])
    assert "hunter2" not in "".join(problems)


# --- .env syntax -----------------------------------------------------------------------------


def test_dotenv_reads_shell_syntax(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# a comment line\n"
        "\n"
        "   \n"
        "export APP_SERVICE_NAME=billing   # an inline comment\n"
        "APP_ENV='stg'\n"
        'APP_INSTANCE="worker # 1"\n'
        "APP_METRICS_HOST = 127.0.0.1\n"
        "APP_COMMIT=abc#def\n"
        'APP_VERSION="1.2.3" # a comment after quotes\n'
        "APP_PUSHGATEWAY_URL= # empty: off\n"
        "APP_LOG_FORMAT='text'   # quoted, then a comment\n"
    )

    config = load_config(environ={}).config

    assert config.service_name == "billing"
    assert config.env == "stg"
    assert config.instance == "worker # 1"
    assert config.metrics_host == "127.0.0.1"
    assert config.commit == "abc#def"  # a `#` inside a word is not a comment
    assert config.version == "1.2.3"
    assert config.pushgateway_url == ""
    assert config.log_format == "text"


def test_dotenv_double_quotes_unescape_and_single_quotes_do_not(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('APP_INSTANCE="say \\"hi\\""\nAPP_COMMIT=\'a\\"b\'\n')

    config = load_config(environ={}).config

    assert config.instance == 'say "hi"'
    assert config.commit == 'a\\"b'


def test_dotenv_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# header\nAPP_ENV=stg\nthis is not an assignment\n")

    problems = problems_of({})

    assert_reported(problems, [(".env file .env line 3", "'this is not an assignment'")])


def test_dotenv_malformed_line_names_the_file_app_env_file_names(tmp_path: Path) -> None:
    (tmp_path / "prod.env").write_text("APP_ENV=prod\n=value\n")

    problems = problems_of({"APP_ENV_FILE": "prod.env"})

    assert_reported(problems, [(".env file prod.env line 2", "expected KEY=VALUE")])


# --- Normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(word, True) for word in ("true", "TRUE", "True", "1", "yes", "YES", "on", "On")],
        *[(word, False) for word in ("false", "FALSE", "0", "no", "No", "off", "OFF")],
        (" yes ", True),
    ],
)
def test_env_booleans_accept_fixed_words_in_any_case(raw: str, expected: bool) -> None:
    assert load_config(environ={"APP_METRICS_ENABLED": raw}).config.metrics_enabled is expected


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [("false", False), ("true", True), ("no", False), ("On", True), ('"off"', False), ("0", False)],
)
def test_yaml_booleans_are_accepted(tmp_path: Path, yaml_value: str, expected: bool) -> None:
    (tmp_path / "config.yml").write_text(f"metrics_enabled: {yaml_value}\n")

    assert load_config(environ={}).config.metrics_enabled is expected


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("65535", 65535), (" 8080 ", 8080)])
def test_env_ints_are_parsed_within_range(raw: str, expected: int) -> None:
    assert load_config(environ={"APP_METRICS_PORT": raw}).config.metrics_port == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", 0.0), ("0.25", 0.25), (".5", 0.5), ("7", 7.0), ("1e-3", 0.001)]
)
def test_env_floats_are_parsed(raw: str, expected: float) -> None:
    config = load_config(environ={"APP_LOOP_SLEEP_SECONDS": raw}).config

    assert config.loop_sleep_seconds == expected
    assert isinstance(config.loop_sleep_seconds, float)


def test_yaml_int_for_a_float_setting_becomes_a_float(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("shutdown_timeout_seconds: 3\n")

    config = load_config(environ={}).config

    assert config.shutdown_timeout_seconds == 3.0
    assert isinstance(config.shutdown_timeout_seconds, float)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), (" error ", "ERROR")],
)
def test_log_level_accepts_any_case_and_is_upper_cased(raw: str, expected: str) -> None:
    assert load_config(environ={"APP_LOG_LEVEL": raw}).config.log_level == expected


def test_log_format_accepts_any_case_and_is_lower_cased() -> None:
    assert load_config(environ={"APP_LOG_FORMAT": "TEXT"}).config.log_format == "text"


@pytest.mark.parametrize("raw", ["dev", "prod", "stg-eu_1"])
def test_env_accepts_lower_case_tokens(raw: str) -> None:
    assert load_config(environ={"APP_ENV": raw}).config.env == raw


def test_heartbeat_file_is_a_path(tmp_path: Path) -> None:
    config = load_config(environ={"APP_HEARTBEAT_FILE": str(tmp_path / "beat.json")}).config

    assert config.heartbeat_file == tmp_path / "beat.json"


@pytest.mark.parametrize(("sleep", "expected"), [("0", 30.0), ("10", 30.0), ("20", 60.0)])
def test_health_max_age_defaults_to_three_sleeps_and_at_least_30(
    sleep: str, expected: float
) -> None:
    loaded = load_config(environ={"APP_LOOP_SLEEP_SECONDS": sleep})

    assert loaded.config.health_max_age_seconds == expected
    assert loaded.sources["health_max_age_seconds"] == "default"


def test_health_max_age_set_above_the_sleep_is_kept() -> None:
    environ = {"APP_LOOP_SLEEP_SECONDS": "20", "APP_HEALTH_MAX_AGE_SECONDS": "21"}

    assert load_config(environ=environ).config.health_max_age_seconds == 21.0


# --- Unknown variables -----------------------------------------------------------------------


def test_unknown_app_variable_is_a_warning_with_a_hint() -> None:
    loaded = load_config(environ={"APP_METRICS_PROT": "9000", "HOME": "/root"})

    assert loaded.config.metrics_port == 8000
    assert loaded.warnings == [
        "unknown variable APP_METRICS_PROT (env) is ignored: did you mean 'APP_METRICS_PORT'?"
    ]


def test_unknown_app_variable_in_dotenv_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_LOG_LEVL=debug\nAPP_ZZZ=1\n")

    warnings = load_config(environ={}).warnings

    assert len(warnings) == 2
    assert "APP_LOG_LEVL (.env file .env)" in warnings[0]
    assert "did you mean 'APP_LOG_LEVEL'?" in warnings[0]
    assert warnings[1] == "unknown variable APP_ZZZ (.env file .env) is ignored"


# --- The bad-configuration matrix ------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad configuration: its sources, and the fragments each expected problem contains."""

    environ: dict[str, str] = field(default_factory=dict)
    yaml: str | None = None  # written to ./settings.yml, passed as config_file
    dotenv: str | None = None  # written to ./.env
    config_file: str | None = None  # defaults to settings.yml when `yaml` is given
    expected: list[tuple[str, ...]] = field(default_factory=list)


YAML = "YAML file settings.yml"
INT_PORT = "an integer 0-65535"
BAD_CONFIGS = {
    "env-int-junk": Bad(
        {"APP_METRICS_PORT": "abc"},
        expected=[("metrics_port='abc'", "env APP_METRICS_PORT", INT_PORT)],
    ),
    "env-int-above-range": Bad(
        {"APP_METRICS_PORT": "70000"},
        expected=[("metrics_port='70000'", "env APP_METRICS_PORT", INT_PORT)],
    ),
    "env-int-below-range": Bad(
        {"APP_METRICS_PORT": "-1"},
        expected=[("metrics_port='-1'", "env APP_METRICS_PORT", INT_PORT)],
    ),
    "env-int-given-a-float": Bad(
        {"APP_METRICS_PORT": "80.0"},
        expected=[("metrics_port='80.0'", "env APP_METRICS_PORT", INT_PORT)],
    ),
    "env-int-given-a-bool-word": Bad(
        {"APP_MAX_CONSECUTIVE_FAILURES": "true"},
        expected=[("max_consecutive_failures='true'", "env APP_MAX_CONSECUTIVE_FAILURES")],
    ),
    "env-int-negative-budget": Bad(
        {"APP_MAX_CONSECUTIVE_FAILURES": "-3"},
        expected=[("max_consecutive_failures='-3'", "an integer >= 0")],
    ),
    "yaml-int-given-a-float": Bad(
        yaml="metrics_port: 8000.0\n", expected=[("metrics_port=8000.0", YAML, INT_PORT)]
    ),
    "yaml-int-given-a-bool": Bad(
        yaml="metrics_port: true\n", expected=[("metrics_port=True", YAML, INT_PORT)]
    ),
    "env-float-nan": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "nan"},
        expected=[("loop_sleep_seconds='nan'", "env APP_LOOP_SLEEP_SECONDS", "a number >= 0")],
    ),
    "env-float-inf": Bad(
        {"APP_SHUTDOWN_TIMEOUT_SECONDS": "inf"},
        expected=[("shutdown_timeout_seconds='inf'", "env APP_SHUTDOWN_TIMEOUT_SECONDS")],
    ),
    "env-float-minus-infinity": Bad(
        {"APP_ITERATION_TIMEOUT_SECONDS": "-Infinity"},
        expected=[("iteration_timeout_seconds='-Infinity'", "env APP_ITERATION_TIMEOUT")],
    ),
    "env-float-junk": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "1,5"},
        expected=[("loop_sleep_seconds='1,5'", "env APP_LOOP_SLEEP_SECONDS")],
    ),
    "env-float-negative": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "-0.5"},
        expected=[("loop_sleep_seconds='-0.5'", "a number >= 0")],
    ),
    "env-float-zero-where-positive": Bad(
        {"APP_SHUTDOWN_TIMEOUT_SECONDS": "0"},
        expected=[("shutdown_timeout_seconds='0'", "a number > 0")],
    ),
    "yaml-float-nan": Bad(
        yaml="loop_sleep_seconds: .nan\n", expected=[("loop_sleep_seconds=nan", YAML)]
    ),
    "yaml-float-inf": Bad(
        yaml="health_max_age_seconds: .inf\n", expected=[("health_max_age_seconds=inf", YAML)]
    ),
    "yaml-float-given-a-bool": Bad(
        yaml="loop_sleep_seconds: yes\n", expected=[("loop_sleep_seconds=True", YAML)]
    ),
    "env-bool-junk": Bad(
        {"APP_METRICS_ENABLED": "maybe"},
        expected=[("metrics_enabled='maybe'", "env APP_METRICS_ENABLED", "a boolean")],
    ),
    "yaml-bool-junk": Bad(
        yaml='metrics_enabled: "sometimes"\n',
        expected=[("metrics_enabled='sometimes'", YAML, "a boolean")],
    ),
    "yaml-bool-given-2": Bad(
        yaml="metrics_enabled: 2\n", expected=[("metrics_enabled=2", YAML, "a boolean")]
    ),
    "env-bad-log-level": Bad(
        {"APP_LOG_LEVEL": "verbose"},
        expected=[("log_level='verbose'", "env APP_LOG_LEVEL", "one of debug, info")],
    ),
    "yaml-bad-log-format": Bad(
        yaml="log_format: xml\n", expected=[("log_format='xml'", YAML, "one of json, text")]
    ),
    "env-empty-service-name": Bad(
        {"APP_SERVICE_NAME": ""},
        expected=[("service_name=''", "env APP_SERVICE_NAME", "a non-empty string")],
    ),
    "yaml-empty-service-name": Bad(
        yaml='service_name: ""\n', expected=[("service_name=''", YAML, "a non-empty string")]
    ),
    "env-upper-case-env": Bad(
        {"APP_ENV": "Prod"}, expected=[("env='Prod'", "env APP_ENV", "lower-case token")]
    ),
    "env-env-with-space": Bad(
        {"APP_ENV": "my env"}, expected=[("env='my env'", "env APP_ENV", "lower-case token")]
    ),
    "env-pushgateway-not-http": Bad(
        {"APP_PUSHGATEWAY_URL": "ftp://gw"},
        expected=[("pushgateway_url='ftp://gw'", "env APP_PUSHGATEWAY_URL", "URL")],
    ),
    "env-empty-heartbeat-file": Bad(
        {"APP_HEARTBEAT_FILE": " "},
        expected=[("heartbeat_file=' '", "env APP_HEARTBEAT_FILE", "a non-empty path")],
    ),
    "dotenv-int-junk": Bad(
        dotenv="APP_METRICS_PORT=abc\n",
        expected=[("metrics_port='abc'", ".env file .env (APP_METRICS_PORT)", INT_PORT)],
    ),
    "yaml-malformed": Bad(
        yaml="metrics_port: [8000\n", expected=[(YAML, "does not parse", "line")]
    ),
    "yaml-tab-indent": Bad(yaml="a:\n\tb: 1\n", expected=[(YAML, "does not parse")]),
    "yaml-list": Bad(
        yaml="- metrics_port\n- 8000\n", expected=[(YAML, "expected a mapping", "got a list")]
    ),
    "yaml-scalar": Bad(yaml="just text\n", expected=[(YAML, "a mapping", "got a string")]),
    "yaml-unknown-key": Bad(
        yaml="metrics_prot: 9000\n",
        expected=[("unknown setting 'metrics_prot'", YAML, "did you mean 'metrics_port'?")],
    ),
    "yaml-unknown-key-without-hint": Bad(
        yaml="zzz: 1\n", expected=[("unknown setting 'zzz'", YAML)]
    ),
    "yaml-null-value": Bad(
        yaml="metrics_port:\n", expected=[("metrics_port=None", YAML, INT_PORT)]
    ),
    "yaml-int-for-a-string": Bad(
        yaml="service_name: 42\n", expected=[("service_name=42", YAML, "quote it in YAML")]
    ),
    "yaml-int-for-a-path": Bad(
        yaml="heartbeat_file: 7\n", expected=[("heartbeat_file=7", YAML, "a non-empty path")]
    ),
    "yaml-not-utf8": Bad(
        config_file="latin1.txt", expected=[("YAML file latin1.txt", "cannot be read")]
    ),
    "yaml-is-a-directory": Bad(config_file=".", expected=[("YAML file .", "cannot be read")]),
    "dotenv-not-utf8": Bad(
        {"APP_ENV_FILE": "latin1.txt"}, expected=[(".env file latin1.txt", "cannot be read")]
    ),
    "dotenv-is-a-directory": Bad(
        {"APP_ENV_FILE": "."}, expected=[(".env file .", "cannot be read")]
    ),
    "env-int-too-many-digits": Bad(
        {"APP_METRICS_PORT": "9" * 5000},
        expected=[("metrics_port='99999", "...", "env APP_METRICS_PORT", INT_PORT)],
    ),
    "yaml-float-too-large": Bad(
        yaml=f"loop_sleep_seconds: {'9' * 400}\n",
        expected=[("loop_sleep_seconds=99999", YAML, "a number >= 0")],
    ),
    "named-yaml-missing": Bad(
        config_file="missing.yml", expected=[("YAML file missing.yml", "not found")]
    ),
    "app-config-file-missing": Bad(
        {"APP_CONFIG_FILE": "gone.yml"}, expected=[("YAML file gone.yml", "not found")]
    ),
    "app-env-file-missing": Bad(
        {"APP_ENV_FILE": "gone.env"}, expected=[(".env file gone.env", "APP_ENV_FILE", "not found")]
    ),
    "max-age-not-above-sleep": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "10", "APP_HEALTH_MAX_AGE_SECONDS": "10"},
        expected=[
            (
                "health_max_age_seconds=10",
                "env APP_HEALTH_MAX_AGE_SECONDS",
                "more than loop_sleep_seconds=10",
            )
        ],
    ),
    "two-errors-env-and-yaml": Bad(
        {"APP_METRICS_PORT": "abc"},
        yaml="log_level: loud\n",
        expected=[
            ("metrics_port='abc'", "env APP_METRICS_PORT"),
            ("log_level='loud'", YAML),
        ],
    ),
    "errors-in-every-source": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "nan"},
        yaml="metrics_enabled: perhaps\nmetrics_prot: 1\n",
        dotenv="APP_ENV=PROD\n",
        expected=[
            ("loop_sleep_seconds='nan'", "env APP_LOOP_SLEEP_SECONDS"),
            ("metrics_enabled='perhaps'", YAML),
            ("env='PROD'", ".env file .env (APP_ENV)"),
            ("unknown setting 'metrics_prot'", YAML),
        ],
    ),
    "conversion-and-cross-check-errors-together": Bad(
        {
            "APP_METRICS_PORT": "abc",
            "APP_LOOP_SLEEP_SECONDS": "10",
            "APP_HEALTH_MAX_AGE_SECONDS": "5",
        },
        expected=[
            ("metrics_port='abc'", "env APP_METRICS_PORT"),
            ("health_max_age_seconds=5", "more than loop_sleep_seconds=10"),
        ],
    ),
    "bad-sleep-is-not-cross-checked": Bad(
        {"APP_LOOP_SLEEP_SECONDS": "soon", "APP_HEALTH_MAX_AGE_SECONDS": "1"},
        expected=[("loop_sleep_seconds='soon'", "env APP_LOOP_SLEEP_SECONDS")],
    ),
}


@pytest.mark.parametrize("bad", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_configuration_names_setting_source_and_value(tmp_path: Path, bad: Bad) -> None:
    # A file that is not UTF-8, for the cases that name it.
    (tmp_path / "latin1.txt").write_bytes("service_name: café\n".encode("latin-1"))
    config_file = bad.config_file
    if bad.yaml is not None:
        (tmp_path / "settings.yml").write_text(bad.yaml)
        config_file = config_file or "settings.yml"
    if bad.dotenv is not None:
        (tmp_path / ".env").write_text(bad.dotenv)

    problems = problems_of(bad.environ, config_file)

    assert_reported(problems, bad.expected)


def test_config_error_message_joins_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"APP_METRICS_PORT": "abc", "APP_LOG_LEVEL": "loud"})

    assert str(info.value) == "; ".join(info.value.problems)
    assert len(info.value.problems) == 2


# --- The real commands -----------------------------------------------------------------------


def run_command(
    command: str, *args: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        env={**os.environ, **env},  # the _isolated fixture removed every APP_* variable
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# Each bad input runs under one of the two commands (they share the loading code): a
# subprocess costs a few hundred milliseconds, more when coverage follows it. Cases: model,
# name, arguments, environment, config.yml, the problems expected.
INVALID_RUNS = [
    pytest.param(f"app-{prefer(model)}", *case, id=f"{prefer(model)}-{name}")
    for model, name, *case in [
        (
            "sync",
            "port",
            [],
            {"APP_METRICS_PORT": "abc"},
            None,
            [("metrics_port='abc'", "APP_METRICS_PORT")],
        ),
        (
            "async",
            "two-problems",
            [],
            {"APP_METRICS_PORT": "abc", "APP_LOG_LEVEL": "loud"},
            None,
            [("metrics_port='abc'", "APP_METRICS_PORT"), ("log_level='loud'", "APP_LOG_LEVEL")],
        ),
        (
            "async",
            "missing-config-file",
            ["--config", "missing.yml"],
            {},
            None,
            [("YAML file missing.yml", "not found")],
        ),
        (
            "sync",
            "yaml-list",
            [],
            {},
            "- not\n- a mapping\n",
            [("YAML file config.yml", "a mapping")],
        ),
        (
            "sync",
            "check-config",
            ["--check-config"],
            {"APP_LOOP_SLEEP_SECONDS": "nan", "APP_ENV": "Prod"},
            None,
            [("loop_sleep_seconds='nan'", "APP_LOOP_SLEEP_SECONDS"), ("env='Prod'", "APP_ENV")],
        ),
    ]
]


@pytest.mark.parametrize(("command", "args", "env", "config_yml", "expected"), INVALID_RUNS)
def test_command_with_bad_config_exits_78_with_one_json_record(
    tmp_path: Path,
    command: str,
    args: list[str],
    env: dict[str, str],
    config_yml: str | None,
    expected: list[tuple[str, ...]],
) -> None:
    if config_yml is not None:
        (tmp_path / "config.yml").write_text(config_yml)

    result = run_command(command, *args, cwd=tmp_path, **env)

    assert result.returncode == EXIT_CONFIG
    assert result.stderr == ""  # no traceback, no argparse noise
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "config_invalid"
    assert record["level"] == "error"
    assert record["service"] == "python-service"
    assert {"ts", "run_id", "instance", "env", "logger", "msg", "error"} <= record.keys()
    assert_reported(record["problems"], expected)


@pytest.mark.parametrize("command", COMMANDS)
def test_check_config_prints_each_value_with_its_source(tmp_path: Path, command: str) -> None:
    (tmp_path / "config.yml").write_text("service_name: from-cwd\n")  # named files win
    (tmp_path / "env.yml").write_text("service_name: from-env-var\n")
    (tmp_path / "option.yml").write_text("service_name: billing\n")
    (tmp_path / ".env").write_text("APP_LOG_LEVEL=debug\n")
    environ = {"APP_CONFIG_FILE": "env.yml", "APP_METRICS_PORT": "9100", "APP_LOG_LEVL": "x"}

    result = run_command(
        command, "--check-config", "--config", "option.yml", cwd=tmp_path, **environ
    )

    assert result.returncode == 0
    assert result.stderr == ""
    report = json.loads(result.stdout)
    settings = report["settings"]
    assert settings.keys() == {f.name for f in fields(Config)}
    assert settings["service_name"] == {"value": "billing", "source": "YAML file option.yml"}
    assert settings["log_level"] == {"value": "DEBUG", "source": ".env file .env (APP_LOG_LEVEL)"}
    assert settings["metrics_port"] == {"value": 9100, "source": "env APP_METRICS_PORT"}
    assert settings["metrics_enabled"] == {"value": True, "source": "default"}
    assert settings["health_max_age_seconds"] == {"value": 30.0, "source": "default"}
    assert report["config_source"] == "defaults+yaml+dotenv+env"
    assert report["warnings"] == [
        "unknown variable APP_LOG_LEVL (env) is ignored: did you mean 'APP_LOG_LEVEL'?"
    ]
    # The same sources loaded in this process give the same identity.
    assert HASH.fullmatch(report["config_hash"])
    assert report["config_hash"] == load_config("option.yml", environ).config_hash


@pytest.mark.parametrize("command", COMMANDS)
def test_version_option_prints_the_package_version(tmp_path: Path, command: str) -> None:
    result = run_command(command, "--version", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout == f"{command} {metadata.version('python-service')}\n"


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"APP_VERSION": "2.0.0"}, "2.0.0"),  # what an image sets from its build argument
        ({"APP_VERSION": "2.0.0", "APP_METRICS_PORT": "junk"}, None),  # needs no valid config
    ],
)
def test_version_option_shows_the_configured_version(
    tmp_path: Path, env: dict[str, str], shown: str | None
) -> None:
    command = f"app-{prefer('sync')}"
    result = run_command(command, "--version", cwd=tmp_path, **env)

    assert result.returncode == 0
    assert result.stdout == f"{command} {shown or metadata.version('python-service')}\n"


def test_help_option_lists_the_options_and_exits_0(tmp_path: Path) -> None:
    result = run_command(f"app-{prefer('async')}", "--help", cwd=tmp_path)  # one shared parser

    assert result.returncode == 0
    for option in ("--config", "--once", "--check-config", "--version"):
        assert option in result.stdout
