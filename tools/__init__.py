"""chaosbed tools: produce load, validate every id end to end, inject faults, report."""

__version__ = "0.1.0"
