"""Set up the project on a machine with only Python 3.11+, then run a command in it.

    python3 dev.py app-sync      # run the example service
    python3 dev.py pytest        # run the test suite

Uses Poetry from PATH, or installs it once into .tools/poetry (never into the project's
own virtualenv). Then `poetry install` (quick when nothing changed) and `poetry run ARGS`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOL_VENV = ROOT / ".tools" / "poetry"
POETRY_SPEC = "poetry>=2.0,<3"


def find_poetry() -> str:
    """Return a Poetry executable, installing one into .tools/poetry if there is none."""
    bin_dir = TOOL_VENV / ("Scripts" if os.name == "nt" else "bin")
    local = bin_dir / ("poetry.exe" if os.name == "nt" else "poetry")
    if local.exists():
        return str(local)
    on_path = shutil.which("poetry")
    if on_path:
        return on_path
    print(f"dev.py: installing {POETRY_SPEC} into {TOOL_VENV.relative_to(ROOT)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(TOOL_VENV)
    pip = [
        str(bin_dir / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, POETRY_SPEC], check=True)
    return str(local)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    poetry = find_poetry()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    install = subprocess.run([poetry, "install", "--quiet"], cwd=ROOT, env=env, check=False)
    if install.returncode != 0:
        return install.returncode
    # exec, so signals (Ctrl+C, SIGTERM) go straight to the service, not to this script.
    os.chdir(ROOT)
    os.execve(poetry, [poetry, "run", *argv], env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
