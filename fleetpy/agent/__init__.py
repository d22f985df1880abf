"""fleetpy.agent package."""
