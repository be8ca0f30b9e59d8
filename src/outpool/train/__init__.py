"""Training: the one loop with hooks (``loop``), pure losses (``losses``), each model's loss and
trainer (``ranker``, ``generator``, ``attribute_net``), evaluation, checkpoints, torchrun."""
