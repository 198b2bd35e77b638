"""Training: building an experiment, the loop, run directories and checkpoints."""
