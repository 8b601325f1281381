#!/usr/bin/env python3
"""Set-up and everyday commands, needing nothing but Python 3.11+.

    python3 tasks.py demo    # create .venv if needed, then run the pipeline on the sample data
    python3 tasks.py test    # create .venv if needed, then run the whole test suite
    python3 tasks.py ui      # the Dagster UI on http://127.0.0.1:3000

The virtual environment lives in .venv/ and is reinstalled when pyproject.toml changes.
Extra arguments after `test` go to pytest (e.g. `python3 tasks.py test -m "not slow"`).
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
STAMP = VENV / ".conversionflow-installed"


def ensure_environment() -> None:
    """Create .venv and install the project (editable, with test tools) when out of date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs on whatever python3 is
        sys.exit(f"conversionflow needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    print(
        "installing conversionflow and its dependencies (first run takes a few minutes) ...",
        flush=True,
    )
    subprocess.run([*pip, "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--quiet", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "ui"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)
    if command == "demo":
        return subprocess.call([str(BIN / "conversionflow"), "run", "--sample", *rest], cwd=ROOT)
    # Replace this process, so a signal to its pid reaches `conversionflow ui` (which stops
    # every process of the UI) rather than a wrapper that would leave them running.
    os.chdir(ROOT)
    os.execv(str(BIN / "conversionflow"), [str(BIN / "conversionflow"), "ui", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
