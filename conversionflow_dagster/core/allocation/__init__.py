"""Stage 2, optimisation: response curves, the budget allocation and its rules, markets."""
