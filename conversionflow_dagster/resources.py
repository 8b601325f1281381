"""Resources: the project (root + validated config) that every asset reads its settings from."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from conversionflow_dagster.core.config import ProjectConfig, load_config, resolve_project_path


class ProjectResource(dg.ConfigurableResource):
    """The project root and its YAML config; paths from config are resolved against the root."""

    root: str
    config_path: str

    def config(self) -> ProjectConfig:
        return load_config(self.config_path)

    def path(self, relative: str) -> Path:
        """A path from config, kept inside the root unless the config allows otherwise."""
        allow = self.config().project.allow_paths_outside_root
        return resolve_project_path(Path(self.root), relative, allow_outside=allow)
