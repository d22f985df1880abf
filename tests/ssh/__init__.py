"""Tests of fleetpy.ssh and the remote commands (status, journal, ssh)."""
