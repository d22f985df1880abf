"""fleetpy.engine package."""
