"""fleetpy.lab package."""
