"""fleetpy.ssh package."""
