"""The Dagster code location: ``defs`` is what ``workspace.yaml`` loads."""

from conversionflow_dagster.code_location import build_definitions

defs = build_definitions()
