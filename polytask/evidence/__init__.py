"""Evidence that multi-task learning helped or hurt: single-task baselines, Δm, verdicts, reports, task affinity."""
