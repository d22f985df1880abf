"""Simulated machines for the scale benchmark: real fleetpyd components (``fleetpy.daemon.server.build``) with the
fake systemd, many per process (``bench.sim.worker``), and cheap probes of etcd and of processes (``bench.sim.probe``).
"""
