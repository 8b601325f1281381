"""Domain core: data contracts, transforms, model, diagnostics, optimiser and report.

Nothing in this package imports Dagster, so every stage can be used and tested on its own.
"""
