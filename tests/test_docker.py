"""The container: a non-root image with a read-only root filesystem, in Docker and Compose.

Deleted with the Docker files (`scripts/make_it_yours.py delete docker`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import yaml
from conftest import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def test_image_runs_as_a_non_root_user_with_nothing_writable_of_its_own() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split("\nFROM ")[-1]  # the last stage is what runs
    users = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert users, "the runtime stage sets no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert not re.search(r"chown|chmod", runtime), "the user should own nothing in the image"


def test_compose_runs_read_only_with_only_tmp_writable() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    apps = {name: s for name, s in compose["services"].items() if name.startswith("app-")}
    assert set(apps) == set(COMMANDS)  # a service per model
    for name, service in apps.items():
        assert service["read_only"] is True, name
        assert [mount.split(":")[0] for mount in service["tmpfs"]] == ["/tmp"], name
        assert "volumes" not in service, name


def test_heartbeat_lives_in_the_writable_tmp_of_the_image() -> None:
    """The one file the service writes must be under the tmpfs, or a read-only root fails it."""
    found = re.search(r"APP_HEARTBEAT_FILE=(\S+)", (ROOT / "Dockerfile").read_text())
    assert found is not None
    assert PurePosixPath(found.group(1)).parent == PurePosixPath("/tmp")
