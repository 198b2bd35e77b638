"""Models: shared encoders, task heads and the multi-task model that joins them."""
