"""The ``outpool`` command line: ``commands`` (datasets, training, evaluation, the demo) and
``annotate`` (the annotation service and file exchange)."""

from outpool.cli.commands import main

__all__ = ["main"]
