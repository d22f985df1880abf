"""Host-key checking as an explicit policy object: fleetctl's ``--known-hosts-file``/``--strict-host-key-checking``.

Adapter layer (reads and appends one OpenSSH-format file; may ask on a terminal). Strict by default: an unknown
host is accepted only after a "yes" on a terminal, and refused without one; with strict checking off, an unknown
host is recorded silently (OpenSSH's ``accept-new``). A host whose key CHANGED is always refused. Hashed entries
(``|1|salt|hash``) are read too; new entries are written in plain form, ``[host]:port`` for a port other than 22.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import paramiko

from fleetpy.errors import HostKeyError

DEFAULT_KNOWN_HOSTS_FILE = "~/.fleetctl/known_hosts"

Confirm = Callable[[str], bool]
"""Asks the user a yes/no question; returns True only for an explicit yes."""


def host_entry(host: str, port: int) -> str:
    """The known_hosts name of an endpoint: ``host`` on port 22, else ``[host]:port`` (OpenSSH's rule)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def terminal_confirm(question: str) -> bool:
    """Ask on the controlling terminal (stdin and stderr must both be ttys); no terminal means no."""
    if not (sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty()):
        raise NoTerminal
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


class NoTerminal(Exception):
    """Raised by a Confirm that has no one to ask."""


class KnownHosts:
    """A known_hosts file and the policy that guards it. Thread-safe; the file is re-read on each check."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_KNOWN_HOSTS_FILE, *, strict: bool = True,
                 confirm: Confirm | None = None) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self.strict = strict
        self.confirm: Confirm = confirm or terminal_confirm
        self._lock = threading.Lock()

    def _load(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if self.path.is_file():
            try:
                keys.load(str(self.path))
            except (OSError, UnicodeDecodeError) as err:
                raise HostKeyError(f"cannot read known hosts file {self.path}: {err}") from err
        return keys

    def known_keys(self, host: str, port: int) -> list[paramiko.PKey]:
        """Every key recorded for the endpoint (hashed entries included)."""
        found = self._load().lookup(host_entry(host, port))
        return list(found.values()) if found is not None else []

    def preferred_key_types(self, host: str, port: int) -> list[str]:
        """Key types already known for the host, so the server is asked for a key we can actually check."""
        return [key.get_name() for key in self.known_keys(host, port)]

    def verify(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Accept ``key`` for ``host:port`` or raise HostKeyError with a one-line reason."""
        name = host_entry(host, port)
        with self._lock:
            known = self.known_keys(host, port)
            if any(k.get_name() == key.get_name() and k.asbytes() == key.asbytes() for k in known):
                return
            offered = f"{key.get_name()} {fingerprint(key)}"
            if known:
                raise HostKeyError(
                    f"host key for {name} has CHANGED (now {offered}; {self.path} has "
                    f"{', '.join(k.get_name() + ' ' + fingerprint(k) for k in known)}): possible man-in-the-middle "
                    f"attack; remove the old entry from {self.path} if the change is expected")
            if self.strict:
                question = (f"The authenticity of host '{name}' can't be established.\n"
                            f"{key.get_name()} key fingerprint is {fingerprint(key)}.\n"
                            "Are you sure you want to continue connecting (yes/no)? ")
                try:
                    accepted = self.confirm(question)
                except NoTerminal:
                    raise HostKeyError(
                        f"host key for {name} is unknown ({offered}) and there is no terminal to confirm it: add it "
                        f"to {self.path} or use --strict-host-key-checking=false") from None
                if not accepted:
                    raise HostKeyError(f"host key for {name} ({offered}) was not accepted")
            self._append(name, key)

    def add(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Record ``key`` for the endpoint (no check)."""
        with self._lock:
            self._append(host_entry(host, port), key)

    def _append(self, name: str, key: paramiko.PKey) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            needs_newline = self.path.is_file() and self.path.stat().st_size > 0 and not \
                self.path.read_bytes().endswith(b"\n")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as out:
                out.write(("\n" if needs_newline else "") + f"{name} {key.get_name()} {key.get_base64()}\n")
        except OSError as err:
            raise HostKeyError(f"cannot record host key for {name} in {self.path}: {err.strerror or err}") from err
