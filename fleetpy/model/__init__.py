"""fleetpy.model package."""
