"""fleetpy.client package."""
