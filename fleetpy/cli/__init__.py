"""fleetpy.cli package."""
