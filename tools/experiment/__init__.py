"""The resilience experiment as one command: `tools experiment run` (and `run_experiment` for the bench)."""
