"""fleetpy: CoreOS fleet, reborn in Python. A systemd-native cluster scheduler on etcd.

The package is layered (imports point downward only): cli -> client -> daemon (agent, engine, api)
-> adapters (registry, systemd, ssh) -> model (pure). See docs/architecture.md.
"""

__version__ = "0.1.0"
