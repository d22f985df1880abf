"""Reliability: faults survived, nothing lost (issue 10). Each module is one fault family, run in a lab."""
