"""Training: pure losses, the one training loop with hooks, and the step functions."""
