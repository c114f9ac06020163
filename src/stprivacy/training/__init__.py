"""Training: shared optimisation machinery, then one module per phase."""
