"""Stage 1, estimation: the NumPyro model, its fit, convergence gates and the parameter export."""
