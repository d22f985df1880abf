"""``fleetpyd`` entry point: ``fleetpyd [--config PATH] [--version]`` and ``fleetpyd version``.

Process edge: parses arguments, loads the config, sets up logging (one line per action, on stderr), installs the
signal handlers (SIGTERM/SIGINT: graceful shutdown; SIGHUP: re-read the config and rebuild the server) and
tells systemd it is ready (``sd_notify`` on ``NOTIFY_SOCKET``, no dependency). Exit 1 on a fatal error.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from fleetpy import __version__
from fleetpy.daemon import config as configuration
from fleetpy.daemon import server
from fleetpy.daemon.config import Config
from fleetpy.daemon.server import Server
from fleetpy.errors import FleetError

log = logging.getLogger("fleetpy.daemon")
USAGE = "usage: fleetpyd [--config PATH] [--version]"


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd when run with Type=notify; False when not."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def setup_logging(verbosity: int) -> None:
    journal = bool(os.environ.get("JOURNAL_STREAM"))  # journald adds its own timestamps
    fmt = "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    if verbosity < 2:  # one line per etcd request (and urllib3's chatter) only at verbosity 2
        logging.getLogger("fleetpy.registry").setLevel(logging.INFO)
        logging.getLogger("urllib3").setLevel(logging.WARNING)


def parse_args(args: list[str]) -> tuple[str, str | None]:
    """-> (action, config path); action is ``run``, ``version`` or ``usage``."""
    path: str | None = None
    i = 0
    if args in (["version"], ["--version"], ["-version"]):
        return "version", None
    while i < len(args):
        arg = args[i]
        if arg in ("--config", "-config") and i + 1 < len(args):
            path = args[i + 1]
            i += 2
        elif arg.startswith(("--config=", "-config=")):
            path = arg.split("=", 1)[1]
            i += 1
        else:
            return "usage", None
    return "run", path


class Daemon:
    """Runs the server; a SIGHUP rebuilds it from a fresh config, keeping units, states and the registration."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.server: Server | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
            if self.server is not None:
                self.server.keep_on_stop = True
        self.stop.set()

    def run(self, config: Config) -> int:
        from fleetpy.api.metrics import Metrics

        metrics = Metrics()
        self.api: Any = None
        try:
            return self._loop(config, metrics)
        finally:
            if self.api is not None:
                self.api.close()

    def _loop(self, config: Config, metrics: Any) -> int:
        reclaim = False
        while True:
            self.stop.clear()
            self.reload.clear()
            srv = server.build(config, reclaim=reclaim, metrics=metrics)
            self.server = srv
            if self.api is None:  # once per process: a SIGHUP rebuild keeps the listeners and swaps the registry
                self.api = server.build_api(config, srv.registry, metrics)
                if self.api is not None:
                    self.api.start()
            else:
                self.api.router.registry = srv.registry
            try:
                status = f"READY=1\nSTATUS=machine {srv.machine_id}"
                code = srv.run(self.stop, ready=lambda: sd_notify(status))  # noqa: B023 - called within the loop
            finally:
                self.server = None
                srv.close()
            if code != 0 or not self.reload.is_set():
                sd_notify("STOPPING=1")
                return code
            sd_notify("RELOADING=1")
            try:
                config, warnings = configuration.load(self.path)
                for warning in warnings:
                    log.warning("%s", warning)
                log.info("SIGHUP: configuration re-read from %s, rebuilding the server", config.source)
            except FleetError as err:
                log.error("SIGHUP: %s (keeping the previous configuration)", err)
            reclaim = True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action, path = parse_args(args)
    if action == "version":
        print(f"fleetpyd version {__version__}")
        return 0
    if action == "usage":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        config, warnings = configuration.load(path)
    except FleetError as err:
        print(f"fleetpyd: {err}", file=sys.stderr)
        return 1
    setup_logging(config.verbosity)
    for warning in warnings:
        log.warning("%s", warning)
    daemon = Daemon(path)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, daemon.on_signal)
    try:
        return daemon.run(config)
    except FleetError as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
