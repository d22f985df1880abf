"""fleetpy.systemd package."""
