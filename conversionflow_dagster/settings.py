"""Where the project lives and which config it runs with, from the environment.

``CONVERSIONFLOW_ROOT`` (default: the repository that holds this package) and
``CONVERSIONFLOW_CONFIG`` (default: ``configs/default.yaml``, relative to the root).
``DAGSTER_HOME`` defaults to ``<root>/storage`` (SQLite), or ``<root>/storage/<profile>`` when
``CONVERSIONFLOW_INSTANCE`` names an instance profile (``postgres``).
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


PROJECT_TAG = "conversionflow/project"  # run tag: which project (config) a run belongs to


def assets_dir(root: Path | None = None) -> Path:
    """Base folder of the IO managers: asset files live at ``<project key>/<asset>/...``
    under it, because every asset key starts with the project's key."""
    return storage_dir(root) / "assets"


def asset_dir(project_key: str, asset: str, root: Path | None = None) -> Path:
    """Where one project's files of one asset live (a file per partition)."""
    return assets_dir(root) / project_key / asset


def jax_cache_dir(root: Path | None = None) -> Path:
    """JAX's persistent compilation cache: a refit of the same shapes does not recompile.

    Shared by all projects on purpose: entries are keyed by the compiled program's hash and hold
    no data, so one project can never read another's numbers from it. JAX's own
    ``JAX_COMPILATION_CACHE_DIR``, when set, names it instead (one cache for several roots, as
    the tests use)."""
    chosen = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(chosen) if chosen else storage_dir(root) / "jax_cache"


def ensure_dagster_home(root: Path | None = None) -> Path:
    """Point DAGSTER_HOME at ``storage/`` (or a profile under it) unless the user chose one."""
    profile = os.environ.get("CONVERSIONFLOW_INSTANCE")
    default = storage_dir(root) / profile if profile else storage_dir(root)
    if profile and not (default / "dagster.yaml").is_file():
        raise SystemExit(f"CONVERSIONFLOW_INSTANCE={profile}: no {default / 'dagster.yaml'}")
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(default)))
    home.mkdir(parents=True, exist_ok=True)
    if home == default and not (home / "dagster.yaml").exists():
        # A project root other than this repository: the embedded default's settings.
        (home / "dagster.yaml").write_text(EMBEDDED_INSTANCE, encoding="utf-8")
    return home


# The embedded default instance (as storage/dagster.yaml in this repository): no telemetry,
# and model fits (the "mcmc" pool) one at a time, since each uses every core.
EMBEDDED_INSTANCE = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""
