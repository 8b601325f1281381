"""conversionflow: a Bayesian marketing-mix pipeline run as a Dagster code location."""
