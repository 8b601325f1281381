"""Where the project lives and which config it runs with, from the environment.

``CONVERSIONFLOW_ROOT`` (default: the repository that holds this package) and
``CONVERSIONFLOW_CONFIG`` (default: ``configs/default.yaml``, relative to the root).
``DAGSTER_HOME`` defaults to ``<root>/storage``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "configs/default.yaml"


def project_root() -> Path:
    return Path(os.environ.get("CONVERSIONFLOW_ROOT", PACKAGE_ROOT)).resolve()


def config_path(root: Path | None = None) -> Path:
    root = root or project_root()
    return (root / os.environ.get("CONVERSIONFLOW_CONFIG", DEFAULT_CONFIG)).resolve()


def storage_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "storage"


def ensure_dagster_home(root: Path | None = None) -> Path:
    """Point DAGSTER_HOME at ``storage/`` unless the user chose another home."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(storage_dir(root))))
    home.mkdir(parents=True, exist_ok=True)
    return home
