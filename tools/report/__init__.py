"""`tools report`: gather a run's data, plot it, render RESILIENCE_REPORT.md."""
