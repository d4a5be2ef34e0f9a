"""Training: one run (``fmnist train``), a study (``fmnist sweep``, ``fmnist compare``), its grid and
plan, resuming, and the progress line."""
