"""fleetpy.api package."""
