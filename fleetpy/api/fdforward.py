"""``fleetpy fd-forward SOCKET``: splice standard input/output to a unix socket (fleetctl's ``fd-forward``).

I/O only. ``fleetpy --tunnel HOST`` with a ``unix://`` endpoint runs this on HOST over SSH and speaks HTTP through
the channel's stdin/stdout. Standard input is copied to the socket (its end half-closes the socket for writing);
the socket is copied to standard output until the server closes it, which ends the command.
"""

from __future__ import annotations

import os
import socket
import threading

from fleetpy.errors import FleetError

BUFFER = 65536


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pump_in(stdin: int, sock: socket.socket) -> None:
    try:
        while data := os.read(stdin, BUFFER):
            sock.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def forward(path: str, *, stdin: int = 0, stdout: int = 1) -> None:
    """Copy ``stdin`` -> socket and socket -> ``stdout`` until the socket's far end closes. FleetError when the
    socket cannot be reached."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise FleetError(f"unable to connect to {path}: {err.strerror or err}") from err
    pump = threading.Thread(target=_pump_in, args=(stdin, sock), name="fd-forward-stdin", daemon=True)
    pump.start()
    try:
        while data := sock.recv(BUFFER):
            _write_all(stdout, data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
