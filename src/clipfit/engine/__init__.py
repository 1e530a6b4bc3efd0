"""Training loop, evaluation and run directories."""
