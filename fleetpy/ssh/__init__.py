"""SSH to fleet machines (paramiko): connections, the ``--tunnel`` transport, known hosts, remote commands.

paramiko is imported here, once, without ``invoke``: paramiko.config imports it only to evaluate ``Match exec``
lines of an OpenSSH client config, which fleetpy never reads, and paramiko supports its absence (the import
error is kept and raised only by ``Match exec``). That import is 70 ms of every ``--tunnel``, ``status``,
``journal`` and ``ssh`` command (measured with ``python -X importtime``: paramiko 155 ms, of which invoke 74).
"""

import sys

if "paramiko" not in sys.modules and "invoke" not in sys.modules:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # None in sys.modules: "import invoke" fails at once
    try:
        import paramiko  # noqa: F401
    finally:
        del sys.modules["invoke"]
