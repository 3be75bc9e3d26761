"""Prometheus metrics: chaosbed's own exporters (producer, fault injector) and saving a run's signals."""
