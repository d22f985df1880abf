"""fleetpy.registry package."""
