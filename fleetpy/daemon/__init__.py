"""fleetpy.daemon package."""
