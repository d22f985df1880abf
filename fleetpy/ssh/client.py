"""SSH connections to fleet machines (paramiko): connect, run a command, open a shell, forward TCP.

Adapter layer; with ``fleetpy.ssh.tunnel`` the only code that imports paramiko's transport. ``connect`` does the
whole setup (TCP or a direct-tcpip channel of another connection, banner, key exchange, host-key policy, public-key
auth from ``--ssh-identity``, ssh-agent and the usual ~/.ssh keys) within ONE deadline, ``--ssh-timeout``, and
reports any failure as a single-line ``TunnelError`` naming ``user@host:port`` and the cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, BinaryIO

import paramiko
from paramiko.agent import AgentRequestHandler

from fleetpy.errors import HostKeyError, TunnelError
from fleetpy.ssh.known_hosts import KnownHosts, fingerprint

DEFAULT_USER = "core"
DEFAULT_PORT = 22
DEFAULT_TIMEOUT = 10.0
DEFAULT_KEY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)  # it logs tracebacks; we report one line


@dataclass(frozen=True, slots=True, eq=False)
class SSHConfig:
    """How to reach any machine: the user, the setup deadline, where keys come from, and the host-key policy."""

    user: str = DEFAULT_USER
    timeout: float = DEFAULT_TIMEOUT
    identity: str = ""  # --ssh-identity / FLEETCTL_SSH_IDENTITY: a private key file tried first
    known_hosts: KnownHosts = field(default_factory=KnownHosts)
    use_agent: bool = True
    key_files: tuple[str, ...] = DEFAULT_KEY_FILES
    keepalive: int = 30


def exit_code(status: int) -> int:
    """A remote exit status as a local one: no status (killed by a signal, channel lost) is 255, like ssh(1)."""
    return 255 if status < 0 else status


class SSHConnection:
    """One authenticated SSH transport. Thread-safe for opening channels; close it (or use ``with``)."""

    def __init__(self, transport: paramiko.Transport, *, host: str, port: int, user: str,
                 via: SSHConnection | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.user = user
        self.via = via
        self.timeout = timeout

    @property
    def label(self) -> str:
        where = f"{self.user}@{self.host}:{self.port}"
        return f"{where} (via {self.via.host}:{self.via.port})" if self.via is not None else where

    # -- channels -----------------------------------------------------------------------------------------
    def open_channel(self, host: str, port: int, *, timeout: float | None = None) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``host:port`` as seen from this connection's host."""
        try:
            return self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                               timeout=timeout if timeout is not None else self.timeout)
        except paramiko.ChannelException as err:
            reason = err.text or f"error {err.code}"
            raise TunnelError(f"SSH host {self.host}:{self.port} cannot reach {host}:{port}: {reason}") from err
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise TunnelError(f"SSH host {self.host}:{self.port} cannot open a channel to {host}:{port}: "
                              f"{_describe(err)}") from err

    def _session(self, forward_agent: bool) -> paramiko.Channel:
        try:
            chan = self.transport.open_session(timeout=self.timeout)
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise TunnelError(f"{self.label}: cannot open a session: {_describe(err)}") from err
        if forward_agent:
            AgentRequestHandler(chan)
        return chan

    def exec_channel(self, command: str) -> paramiko.Channel:
        """A session channel running ``command`` (a shell command line): its stdin/stdout are the channel's data,
        its stderr is left unread (a relay such as ``fleetpy fd-forward``)."""
        chan = self._session(False)
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as err:
            chan.close()
            raise TunnelError(f"{self.label}: cannot run {command}: {_describe(err)}") from err
        return chan

    # -- commands -----------------------------------------------------------------------------------------
    def run(self, command: str, *, stdout: BinaryIO, stderr: BinaryIO, forward_agent: bool = False) -> int:
        """Run ``command`` (a shell command line) with no pty, streaming its output; return its exit code.

        A KeyboardInterrupt closes the channel and propagates (the caller decides the exit code)."""
        chan = self._session(forward_agent)
        try:
            chan.exec_command(command)
            chan.shutdown_write()  # no stdin: the remote command sees EOF, as with ``ssh -n``
            errors = threading.Thread(target=_copy, args=(chan.recv_stderr, stderr), daemon=True)
            errors.start()
            _copy(chan.recv, stdout)
            errors.join()
            return exit_code(chan.recv_exit_status())
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise TunnelError(f"{self.label}: {_describe(err)}") from err
        finally:
            chan.close()

    def shell(self, *, stdin_fd: int, stdout_fd: int, forward_agent: bool = False) -> int:
        """An interactive shell: a pty sized like the local terminal when stdin is one (raw mode, SIGWINCH
        follows resizes), else a plain shell fed from stdin. Returns the shell's exit code."""
        chan = self._session(forward_agent)
        is_tty = os.isatty(stdin_fd)
        try:
            if is_tty:
                cols, rows = os.get_terminal_size(stdin_fd)
                chan.get_pty(term=os.environ.get("TERM", "xterm-256color"), width=cols, height=rows)
            else:
                chan.set_combine_stderr(True)
            chan.invoke_shell()
            with _raw_terminal(stdin_fd, chan) if is_tty else contextlib.nullcontext():
                _interact(chan, stdin_fd, stdout_fd)
            return exit_code(chan.recv_exit_status())
        except (paramiko.SSHException, EOFError) as err:
            raise TunnelError(f"{self.label}: {_describe(err)}") from err
        finally:
            chan.close()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def connect(host: str, port: int, config: SSHConfig, *, via: SSHConnection | None = None) -> SSHConnection:
    """Connect and authenticate to ``host:port`` (through ``via`` when given: ssh-in-ssh), all within
    ``config.timeout``. Raises TunnelError (HostKeyError for a refused host key) with one line naming the host."""
    deadline = time.monotonic() + config.timeout
    target = f"{config.user}@{host}:{port}" + (f" (via {via.host}:{via.port})" if via is not None else "")

    def left(stage: str = "connecting") -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TunnelError(f"timed out after {config.timeout:g}s {stage}")
        return remaining

    sock: socket.socket | paramiko.Channel
    if via is not None:
        try:
            sock = via.open_channel(host, port, timeout=left())
        except TunnelError as err:
            if "timed out" in str(err) or "Timeout" in str(err):
                raise TunnelError(f"Unable to SSH to {target}: timed out after {config.timeout:g}s connecting") from err
            raise TunnelError(f"Unable to SSH to {target}: {err}") from err
    else:
        try:
            sock = socket.create_connection((host, port), timeout=left())
        except OSError as err:
            raise TunnelError(f"Unable to SSH to {target}: {_describe(err, config.timeout)}") from err
        sock = _prompt(sock)
    transport = paramiko.Transport(sock)
    try:
        _handshake(transport, host, port, config, left)
        _authenticate(transport, config, left)
    except HostKeyError as err:
        transport.close()
        raise HostKeyError(f"Unable to SSH to {target}: {err}") from err
    except TunnelError as err:
        transport.close()
        raise TunnelError(f"Unable to SSH to {target}: {err}") from err
    except BaseException:
        transport.close()
        raise
    if config.keepalive:
        transport.set_keepalive(config.keepalive)
    return SSHConnection(transport, host=host, port=port, user=config.user, via=via, timeout=config.timeout)


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


class _PromptSocket:
    """A TCP socket for SSH's many small request/answer exchanges, without the ~40 ms stalls of Nagle's
    algorithm meeting delayed ACKs: writes go out at once (TCP_NODELAY), and each read re-arms TCP_QUICKACK
    so the data it receives is acknowledged at once (an unacknowledged packet from sshd, such as its
    unanswered ``hostkeys-00@openssh.com`` notice, would otherwise hold sshd's next answer back)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _prompt(sock: socket.socket) -> Any:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _PromptSocket(sock)


def _handshake(transport: paramiko.Transport, host: str, port: int, config: SSHConfig,
               left: Callable[..., float]) -> None:
    known_types = config.known_hosts.preferred_key_types(host, port)
    if known_types:  # ask for a key type we know, so a known host is checked and not "changed"
        options = transport.get_security_options()
        options.key_types = tuple([t for t in known_types if t in options.key_types]
                                  + [t for t in options.key_types if t not in known_types])
    # paramiko's own timeouts are set a little past our deadline, so that the deadline speaks first
    transport.banner_timeout = left() + 1.0
    transport.handshake_timeout = left() + 1.0
    done = threading.Event()
    transport.start_client(event=done)
    while not done.wait(0.05):
        if not transport.is_active():
            break
        left("waiting for the SSH banner" if transport.remote_version == "" else "in the SSH key exchange")
    if not transport.is_active() or not done.is_set():
        err = transport.get_exception()
        raise TunnelError(f"SSH negotiation failed: {_describe(err)}")
    config.known_hosts.verify(host, port, transport.get_remote_server_key())


def _authenticate(transport: paramiko.Transport, config: SSHConfig, left: Callable[..., float]) -> None:
    agent = paramiko.Agent() if config.use_agent and os.environ.get("SSH_AUTH_SOCK") else None
    try:
        _try_keys(transport, config, left, agent)
    finally:
        if agent is not None:
            agent.close()


def _try_keys(transport: paramiko.Transport, config: SSHConfig, left: Callable[..., float],
              agent: paramiko.Agent | None) -> None:
    tried: list[str] = []
    seen: set[str] = set()
    for source, key in _keys(config, agent, tried):
        print_ = fingerprint(key)
        if print_ in seen:
            continue
        seen.add(print_)
        transport.auth_timeout = left("authenticating") + 1.0
        try:
            transport.auth_publickey(config.user, key)
        except paramiko.BadAuthenticationType as err:
            raise TunnelError(f"server refuses public-key authentication (allowed: {', '.join(err.allowed_types)})"
                              ) from err
        except paramiko.AuthenticationException:
            tried.append(source)
            continue
        except (paramiko.SSHException, EOFError, OSError) as err:
            left("authenticating")
            raise TunnelError(f"authentication failed: {_describe(err)}") from err
        if transport.is_authenticated():
            return
        tried.append(source)
    left("authenticating")
    raise TunnelError("authentication refused (tried " + (", ".join(tried) if tried else "no key: no ssh-agent, no "
                      "--ssh-identity and no ~/.ssh key") + ")")


def _keys(config: SSHConfig, agent: paramiko.Agent | None, notes: list[str]) -> Iterator[tuple[str, paramiko.PKey]]:
    """Candidate keys in order: --ssh-identity, the agent's keys, then the default ~/.ssh files."""
    if config.identity:
        path = os.path.expanduser(config.identity)
        try:
            yield path, paramiko.PKey.from_path(path)
        except (OSError, paramiko.SSHException, ValueError) as err:
            raise TunnelError(f"cannot use identity file {path}: {_describe(err)}") from err
    if agent is not None:
        try:
            agent_keys = agent.get_keys()
        except (paramiko.SSHException, OSError):
            agent_keys = ()
        for key in agent_keys:
            yield "agent key " + fingerprint(key), key
    for name in config.key_files:
        path = os.path.expanduser(name)
        if not os.path.isfile(path) or os.path.abspath(path) == os.path.abspath(os.path.expanduser(config.identity)):
            continue
        try:
            yield path, paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            notes.append(f"{path} (encrypted: load it into ssh-agent)")
        except (OSError, paramiko.SSHException, ValueError):
            continue


def _copy(read: Callable[[int], bytes], out: BinaryIO) -> None:
    while True:
        data = read(32768)
        if not data:
            return
        out.write(data)
        out.flush()


def _interact(chan: paramiko.Channel, stdin_fd: int, stdout_fd: int) -> None:
    inputs: list[Any] = [chan, stdin_fd]
    while True:
        ready, _, _ = select.select(inputs, [], [], 0.5)
        if chan in ready:
            data = chan.recv(32768)
            if not data:
                return
            _write_all(stdout_fd, data)
        if stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if data:
                chan.sendall(data)
            else:
                chan.shutdown_write()
                inputs.remove(stdin_fd)
        if chan.closed or (chan.exit_status_ready() and not chan.recv_ready()):
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextlib.contextmanager
def _raw_terminal(fd: int, chan: paramiko.Channel) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    previous: object = None

    def resize(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError, paramiko.SSHException):
            cols, rows = os.get_terminal_size(fd)
            chan.resize_pty(width=cols, height=rows)

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGWINCH, resize)
    tty.setraw(fd, termios.TCSADRAIN)  # keep type-ahead (the default TCSAFLUSH drops it)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)  # type: ignore[arg-type]


def _describe(err: BaseException | None, timeout: float | None = None) -> str:
    """A library exception as a short user-facing cause."""
    if err is None:
        return "unknown error"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.timeout | TimeoutError):
        return f"timed out after {timeout:g}s" if timeout is not None else "timed out"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve host name ({err.strerror})"
    if isinstance(err, EOFError):
        return "connection closed by the remote host"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror[0].lower() + err.strerror[1:]
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]
