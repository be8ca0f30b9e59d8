"""The workflows behind the commands: ranker runs (``train-ranker``, ``eval``, ``score``),
generator runs (``train-generator``), crowd labelling (``data label``) and the demo."""
