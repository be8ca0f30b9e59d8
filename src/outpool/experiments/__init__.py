"""Experiments: grids of (attribute, method, protocol, seed) cells run into one folder, their
results file, and the demo's config (``demo.toml``)."""
