"""Typed settings loaded from env > .env > YAML > defaults, validated all at once."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import reprlib
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "APP_"
CONTROL_VARS = frozenset({"APP_CONFIG_FILE", "APP_ENV_FILE"})  # name sources, not settings
DEFAULT_CONFIG_FILE = "config.yml"
DEFAULT_ENV_FILE = ".env"
SECRET_MARKERS = ("password", "secret", "token", "key", "dsn")
REDACTED = "***"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DISTRIBUTION = "python-service"  # the [project] name in pyproject.toml


def _default_version() -> str:
    # Imported here: it brings email and zipfile (~15 ms, 1 MiB), and the image sets APP_VERSION.
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _default_heartbeat_file() -> Path:
    return Path(tempfile.gettempdir()) / "app-heartbeat.json"


def setting(
    default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **rules: Any
) -> Any:
    """A dataclass field with validation rules: ge/gt/le (numbers), choices, pattern (strings)."""
    if factory is not None:
        return field(default_factory=factory, metadata=rules)
    return field(default=default, metadata=rules)


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of the service. Add one typed field here (plus config.yml, .env.example)."""

    service_name: str = setting("python-service", pattern=r".+")
    env: str = setting("dev", pattern=r"[a-z][a-z0-9_-]*")
    log_level: str = setting("INFO", choices=LOG_LEVELS)
    log_format: str = setting("json", choices=("json", "text"))
    metrics_enabled: bool = True
    metrics_host: str = setting("0.0.0.0", pattern=r".+")  # noqa: S104 - containers need it
    metrics_port: int = setting(8000, ge=0, le=65535)
    loop_sleep_seconds: float = setting(5.0, ge=0)
    heartbeat_file: Path = setting(factory=_default_heartbeat_file)
    # When not set: max(30, 3 * loop_sleep_seconds), see _derive_defaults.
    health_max_age_seconds: float = setting(30.0, gt=0)
    shutdown_timeout_seconds: float = setting(10.0, gt=0)
    max_consecutive_failures: int = setting(0, ge=0)
    iteration_timeout_seconds: float = setting(0.0, ge=0)
    readiness_check_interval_seconds: float = setting(10.0, gt=0)
    readiness_check_timeout_seconds: float = setting(5.0, gt=0)
    pushgateway_url: str = setting("", pattern=r"(https?://.+)?")
    instance: str = setting(factory=socket.gethostname)
    version: str = setting(factory=_default_version, pattern=r".+")
    commit: str = setting("unknown", pattern=r".+")


class ConfigError(Exception):
    """One or more settings are invalid; `problems` lists each, naming setting and source."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    """A validated Config plus where each value came from."""

    config: Config
    sources: dict[str, str]  # field name -> "default", "env APP_X", ".env file .env", "YAML file p"
    warnings: list[str]

    @property
    def config_source(self) -> str:
        """Which sources contributed, lowest first, e.g. `defaults+yaml+env`."""
        kinds = {source.split(" ", 1)[0] for source in self.sources.values()}
        order = (("default", "defaults"), ("YAML", "yaml"), (".env", "dotenv"), ("env", "env"))
        return "+".join(label for kind, label in order if kind in kinds)

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(redacted(self.config), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def redacted(config: Config) -> dict[str, Any]:
    """The settings as JSON-ready values, secrets shown as ***."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_secret(f.name) and value:
            out[f.name] = REDACTED
        else:
            out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Build the Config from the sources, highest first: environ > .env > YAML > defaults.

    `config_file` (the --config option) beats APP_CONFIG_FILE; a named file must exist.
    Raises ConfigError listing every problem found.
    """
    environ = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    warnings: list[str] = []
    names = [f.name for f in fields(Config)]
    raw: dict[str, tuple[object, str]] = {}  # field -> (raw value, source), lowest source first

    yaml_path, required = _yaml_path(config_file, environ)
    if yaml_path is not None:
        for key, value in _read_yaml(yaml_path, required, problems).items():
            if key in names:
                raw[key] = (value, f"YAML file {yaml_path}")
            else:
                problems.append(
                    f"unknown setting {key!r} (YAML file {yaml_path}){_hint(key, names)}"
                )

    env_path = environ.get("APP_ENV_FILE") or DEFAULT_ENV_FILE
    dotenv = _read_env_file(Path(env_path), "APP_ENV_FILE" in environ, problems)
    known = {env_name(n): n for n in names}
    for var, value in dotenv.items():
        if var in known and var not in environ:  # .env never overrides the real environment
            raw[known[var]] = (value, f".env file {env_path} ({var})")
    for var, value in environ.items():
        if var in known:
            raw[known[var]] = (value, f"env {var}")
    for var, label in [
        *((v, f".env file {env_path}") for v in dotenv),
        *((v, "env") for v in environ),
    ]:
        if var.startswith(ENV_PREFIX) and var not in known and var not in CONTROL_VARS:
            hint = _hint(var, [*known, *sorted(CONTROL_VARS)])
            warnings.append(f"unknown variable {var} ({label}) is ignored{hint}")

    values, sources = _convert_all(raw, problems)
    # Settings that failed to convert keep their default here, only to check the others.
    config = _derive_defaults(Config(**values), sources, raw.keys() - values.keys(), problems)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(config, sources, warnings)


def _yaml_path(config_file: object, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The YAML file to read, and whether it was named explicitly (then it must exist)."""
    named = config_file or environ.get("APP_CONFIG_FILE")
    if named:
        return Path(str(named)), True
    default = Path(DEFAULT_CONFIG_FILE)
    return (default, False) if default.is_file() else (None, False)


def _read_text(path: Path, where: str, required: bool, problems: list[str]) -> str:
    """The file's text, or "" when it is missing (a problem if `required`) or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            problems.append(f"{where}: not found")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{where}: cannot be read: {exc}")
    return ""


def _read_yaml(path: Path, required: bool, problems: list[str]) -> dict[str, object]:
    import yaml  # here, not at the top: ~10 ms and 1 MiB that a service with no YAML file skips

    where = f"YAML file {path}"
    text = _read_text(path, where, required, problems)
    try:
        # Not CSafeLoader: libyaml recurses in C per nesting level, so a file of 30,000 `[`
        # overflows the C stack (a segfault); the Python loader raises RecursionError.
        document = yaml.load(text, Loader=yaml.SafeLoader)
    # PyYAML's constructors raise more than YAMLError on bad tagged scalars: IndexError
    # (`!!int ""`), KeyError (`!!bool maybe`), AttributeError (`!!timestamp junk`).
    except (
        yaml.YAMLError,
        RecursionError,
        ValueError,
        OverflowError,
        LookupError,
        AttributeError,
        TypeError,
    ) as exc:
        problems.append(f"{where}: does not parse: {' '.join(str(exc).split())}")
        return {}
    if document is None:  # an empty file (or only comments) sets nothing
        return {}
    if not isinstance(document, dict):
        problems.append(f"{where}: expected a mapping of setting: value, got {_kind(document)}")
        return {}
    # _shorten, not str(): a hex key can be an int too long for str().
    return {key if isinstance(key, str) else _shorten(key): v for key, v in document.items()}


_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")
_QUOTED = re.compile(r"""(['"])(.*)\1(?:\s+#.*)?""")  # 'value' or "value", then a comment


def _read_env_file(path: Path, required: bool, problems: list[str]) -> dict[str, str]:
    """Parse KEY=VALUE lines: `export`, quotes and # comments as a shell would read them."""
    where = f".env file {path}"
    text = _read_text(path, where + " (APP_ENV_FILE)" if required else where, required, problems)
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            problems.append(f"{where} line {number}: expected KEY=VALUE, got {_shorten(line)}")
            continue
        key, value = match.groups()
        quoted = _QUOTED.fullmatch(value.strip())
        if quoted:
            value = quoted.group(2)
            if quoted.group(1) == '"':
                value = value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        else:  # a comment starts at a `#` after whitespace: `KEY= # note` is empty
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key] = value
    return values


def _convert_all(
    raw: dict[str, tuple[object, str]], problems: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    types = get_type_hints(Config)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in fields(Config):
        if f.name not in raw:
            sources[f.name] = "default"
            continue
        value, source = raw[f.name]
        sources[f.name] = source
        try:
            values[f.name] = _convert(value, types[f.name], f.metadata)
        except ValueError as exc:
            shown = REDACTED if is_secret(f.name) else _shorten(value)
            problems.append(f"{f.name}={shown} ({source}): expected {exc}")
    return values, sources


def _convert(value: object, kind: type, rules: Mapping[str, Any]) -> object:
    """Convert one raw value (a string from env, or a YAML scalar) to `kind`, checking rules.

    Raises ValueError whose message says what was expected.
    """
    expected = _expectation(kind, rules)
    if kind is bool:
        return _to_bool(value, expected)
    if kind is int:
        number: float = _to_int(value, expected)
    elif kind is float:
        number = _to_float(value, expected)
    else:
        if not isinstance(value, str):
            raise ValueError(f"{expected} (quote it in YAML)")
        return _check_text(value, kind, rules, expected)
    if ("ge" in rules and number < rules["ge"]) or ("gt" in rules and number <= rules["gt"]):
        raise ValueError(expected)
    if "le" in rules and number > rules["le"]:
        raise ValueError(expected)
    return number


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _to_bool(value: object, expected: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(expected)


def _to_int(value: object, expected: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
        try:
            return int(value)
        except ValueError:  # more digits than int() accepts
            pass
    raise ValueError(expected)


def _to_float(value: object, expected: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    elif isinstance(value, str) and re.fullmatch(
        r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*", value
    ):
        number = float(value)
    if number is None or not math.isfinite(number):
        raise ValueError(expected)
    return number


def _check_text(value: str, kind: type, rules: Mapping[str, Any], expected: str) -> object:
    if "choices" in rules:
        upper = value.strip().upper()
        choices = tuple(rules["choices"])
        if upper in (c.upper() for c in choices):
            return next(c for c in choices if c.upper() == upper)
        raise ValueError(expected)
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        raise ValueError(expected)
    if kind is Path:
        if not value.strip():
            raise ValueError(expected)
        return Path(value)
    return value


def _expectation(kind: type, rules: Mapping[str, Any]) -> str:
    """Say what a field accepts, e.g. "an integer 0-65535" or "a number > 0"."""
    if kind is bool:
        return "a boolean (true/false, 1/0, yes/no, on/off)"
    if "choices" in rules:
        return "one of " + ", ".join(c.lower() for c in rules["choices"]) + " (any case)"
    noun = {int: "an integer", float: "a number", Path: "a non-empty path"}.get(kind, "a string")
    if "ge" in rules and "le" in rules:
        return f"{noun} {rules['ge']}-{rules['le']}"
    for rule, sign in (("ge", ">="), ("gt", ">"), ("le", "<=")):
        if rule in rules:
            return f"{noun} {sign} {rules[rule]}"
    pattern = rules.get("pattern")
    if pattern == ".+":
        return "a non-empty string"
    if pattern is not None and pattern.startswith("(https?"):
        return "an http:// or https:// URL, or empty for off"
    if pattern is not None:
        return f"a lower-case token matching {pattern}"
    return noun


def _derive_defaults(
    config: Config, sources: dict[str, str], invalid: set[str], problems: list[str]
) -> Config:
    """Fill settings whose default depends on others, and check settings against each other.

    `invalid` names the settings that failed to convert: they are not compared.
    """
    max_age = config.health_max_age_seconds
    comparable = not invalid & {"health_max_age_seconds", "loop_sleep_seconds"}
    if sources["health_max_age_seconds"] == "default":
        max_age = max(30.0, 3 * config.loop_sleep_seconds)
        config = replace(config, health_max_age_seconds=max_age)
    elif comparable and max_age <= config.loop_sleep_seconds:
        problems.append(
            f"health_max_age_seconds={max_age:g} ({sources['health_max_age_seconds']}): expected "
            f"more than loop_sleep_seconds={config.loop_sleep_seconds:g}, or every wait would "
            "look like a hang"
        )
    return config


def _hint(name: str, candidates: list[str]) -> str:
    import difflib  # only a mistake in the settings needs it

    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


class _ShortRepr(reprlib.Repr):
    """repr() bounded for any YAML value: deep, self-referencing or with huge integers."""

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # over 4300 digits, which a hex or binary int in YAML can have
            return f"<an integer of {x.bit_length()} bits>"


_SHORT_REPR = _ShortRepr()


def _shorten(value: object, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
