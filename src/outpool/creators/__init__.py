"""Pair creators: what makes the pairs the annotators label (ATTIC and its baselines)."""
