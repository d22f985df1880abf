"""Test tools shipped with the package (like trio.testing): fakes of every port and a real-etcd launcher.

``MemoryStore`` (registry port), ``FakeClock``, ``EtcdServer`` (a real etcd process on free loopback ports).
The fake systemd driver lives in ``fleetpy.systemd.fake``.
"""

from __future__ import annotations

from fleetpy.registry.memory import MemoryStore
from fleetpy.testing.clock import FakeClock
from fleetpy.testing.etcd_server import EtcdServer, etcd_binary

__all__ = ["EtcdServer", "FakeClock", "MemoryStore", "etcd_binary"]
