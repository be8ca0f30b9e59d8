"""outpool: learn fine-grained visual comparisons by creating the training pairs a ranker needs.

A faithful, modern reimplementation of ATTIC (Yu & Grauman, "Thinking Outside the Pool") and a
practical tool around it. See README.md and ARCHITECTURE.md.
"""

__version__ = "0.1.0"
