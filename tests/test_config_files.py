"""config.yml and .env.example list every setting of Config, no other, with valid values."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from app.config import Config, env_name, load_config

ROOT = Path(__file__).resolve().parents[1]  # tests chdir to tmp_path, so not Path.cwd()
CONFIG_YML = ROOT / "config.yml"
ENV_EXAMPLE = ROOT / ".env.example"
FIELDS = [f.name for f in fields(Config)]

# A setting line, set or commented out: `key: value`, `# key: value`, `# APP_KEY=value`.
# Prose comments never match: they do not start with a lower-case word and a colon.
YAML_SETTING = re.compile(r"(?:#\s?)?([a-z][a-z0-9_]*):(?:\s.*)?")
ENV_SETTING = re.compile(r"(?:#\s?)?(APP_[A-Z0-9_]+)=(.*)")


def yaml_settings() -> list[tuple[str, str]]:
    """(key, line without the comment marker) for each setting line of config.yml."""
    found = []
    for line in CONFIG_YML.read_text(encoding="utf-8").splitlines():
        match = YAML_SETTING.fullmatch(line)
        if match:
            found.append((match[1], line.removeprefix("#").strip()))
    return found


def env_settings() -> list[tuple[str, str]]:
    """(variable, value) for each setting line of .env.example."""
    found = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ENV_SETTING.fullmatch(line)
        if match:
            found.append((match[1], match[2]))
    return found


def check_names(listed: list[str], expected: list[str], where: str) -> list[str]:
    """Problems with `listed` against `expected`: missing, unknown and repeated names."""
    problems = [f"{where}: missing {name}" for name in expected if name not in listed]
    problems += [f"{where}: unknown setting {name}" for name in listed if name not in expected]
    problems += [f"{where}: {name} listed twice" for name in set(listed) if listed.count(name) > 1]
    return problems


def test_config_yml_lists_every_setting_once() -> None:
    assert check_names([key for key, _ in yaml_settings()], FIELDS, "config.yml") == []


def test_env_example_lists_every_setting_once() -> None:
    names = [name for name, _ in env_settings()]
    assert check_names(names, [env_name(f) for f in FIELDS], ".env.example") == []


def test_config_yml_loads_as_shipped() -> None:
    """The service reads ./config.yml when present, so the file as committed must be valid."""
    loaded = load_config(config_file=CONFIG_YML, environ={})
    assert "yaml" in loaded.config_source
    assert loaded.warnings == []


def test_config_yml_examples_are_valid_when_uncommented(tmp_path: Path) -> None:
    uncommented = tmp_path / "config.yml"
    uncommented.write_text("\n".join(line for _, line in yaml_settings()) + "\n")
    parsed = yaml.safe_load(uncommented.read_text())
    loaded = load_config(config_file=uncommented, environ={})
    assert set(parsed) == set(FIELDS)
    assert {name for name, source in loaded.sources.items() if source == "default"} == set()


def test_env_example_values_are_valid_when_uncommented() -> None:
    loaded = load_config(environ=dict(env_settings()))
    assert {name for name, source in loaded.sources.items() if source == "default"} == set()
    assert loaded.warnings == []
