"""Resources: the project (root + validated config) that every asset reads its settings from."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

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


Section = TypeVar("Section", bound=BaseModel)


def with_overrides(section: Section, run_config: dg.Config) -> Section:
    """A config section with every run-config field that was given (not None) laid over it."""
    overrides = {k: v for k, v in run_config.model_dump().items() if v is not None}
    return type(section).model_validate({**section.model_dump(), **overrides})
