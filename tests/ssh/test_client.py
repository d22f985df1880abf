"""SSH client against a real sshd: commands and exit codes, ssh-in-ssh, agent auth and forwarding, a shell, and
one-line failures (closed port, refused key, silent server) within the timeout."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetpy.errors import HostKeyError, TunnelError
from fleetpy.ssh.client import SSHConnection, connect

from .conftest import SSHServer


@pytest.fixture
def conn(sshd: SSHServer) -> Iterator[SSHConnection]:
    with connect(sshd.host, sshd.port, sshd.config()) as connection:
        yield connection


def run(conn: SSHConnection, command: str, **kw: bool) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    code = conn.run(command, stdout=out, stderr=err, **kw)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("command", "code"), [
    pytest.param("true", 0, id="true"), pytest.param("false", 1, id="false"),
    pytest.param("exit 7", 7, id="exit-7"), pytest.param("kill -9 $$", 255, id="killed-by-signal"),
])
def test_exit_codes_propagate(conn: SSHConnection, command: str, code: int) -> None:
    assert run(conn, command)[0] == code


def test_the_connection_sends_and_acknowledges_at_once(conn: SSHConnection) -> None:
    # Nagle + delayed ACKs cost ~40 ms on a direct-tcpip channel open or a command's first answer
    sock = conn.transport.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert run(conn, "echo quick") == (0, b"quick\n", b"")


def test_stdout_and_stderr_are_separate(conn: SSHConnection) -> None:
    assert run(conn, "echo out; echo err >&2; hostname") == (0, f"out\n{socket.gethostname()}\n".encode(), b"err\n")


def test_large_output_streams_completely(conn: SSHConnection) -> None:
    code, out, _ = run(conn, "head -c 3000000 /dev/zero")
    assert code == 0 and len(out) == 3_000_000


def test_remote_stdin_is_closed(conn: SSHConnection) -> None:
    assert run(conn, "cat; echo done") == (0, b"done\n", b"")


def test_ssh_in_ssh(conn: SSHConnection, sshd: SSHServer) -> None:
    with connect("127.0.0.1", sshd.port, sshd.config(), via=conn) as inner:
        assert inner.label == f"root@127.0.0.1:{sshd.port} (via 127.0.0.1:{sshd.port})"
        assert run(inner, "echo inner; exit 4") == (4, b"inner\n", b"")


def test_ssh_in_ssh_to_unreachable_machine(conn: SSHConnection, sshd: SSHServer) -> None:
    port = _closed_port()
    with pytest.raises(TunnelError) as err:
        connect("127.0.0.1", port, sshd.config(), via=conn)
    assert str(err.value) == (f"Unable to SSH to root@127.0.0.1:{port} (via 127.0.0.1:{sshd.port}): SSH host "
                              f"127.0.0.1:{sshd.port} cannot reach 127.0.0.1:{port}: Connect failed")


def test_shell_without_terminal_reads_stdin(conn: SSHConnection) -> None:
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(stdin_w, b"echo from-shell\nexit 5\n")
    os.close(stdin_w)
    try:
        assert conn.shell(stdin_fd=stdin_r, stdout_fd=out_w) == 5
    finally:
        os.close(stdin_r)
        os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        assert b"from-shell" in f.read()


@pytest.fixture
def agent(sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], env=env, check=True, stderr=subprocess.DEVNULL)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        yield sock
    finally:
        proc.terminate()
        proc.wait()


def test_agent_keys_authenticate_and_forward(sshd: SSHServer, agent: str) -> None:
    with connect(sshd.host, sshd.port, sshd.config(identity="", use_agent=True)) as conn:
        assert run(conn, "ssh-add -l")[0] != 0  # not forwarded unless asked
        code, out, _ = run(conn, "ssh-add -l", forward_agent=True)
        assert code == 0 and b"fleetpy-test" in out


def test_default_key_files_are_tried(sshd: SSHServer) -> None:
    config = sshd.config(identity="", key_files=("~/.ssh/fleetpy-none", str(sshd.client_key)))
    with connect(sshd.host, sshd.port, config) as conn:
        assert conn.transport.is_authenticated()


# -- failures: one line naming the host and the cause, within the timeout ----------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port(sshd: SSHServer) -> None:
    port = _closed_port()
    with pytest.raises(TunnelError) as err:
        connect("127.0.0.1", port, sshd.config())
    assert str(err.value) == f"Unable to SSH to root@127.0.0.1:{port}: connection refused"


def test_refused_key(sshd: SSHServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(TunnelError) as err:
        connect(sshd.host, sshd.port, sshd.config(identity=str(wrong)))
    assert not isinstance(err.value, HostKeyError)
    assert str(err.value) == f"Unable to SSH to root@127.0.0.1:{sshd.port}: authentication refused (tried {wrong})"


def test_no_key_at_all(sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(TunnelError, match=r"authentication refused \(tried no key: no ssh-agent"):
        connect(sshd.host, sshd.port, sshd.config(identity=""))


def test_missing_identity_file(sshd: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(TunnelError, match=f"cannot use identity file {tmp_path}/nope"):
        connect(sshd.host, sshd.port, sshd.config(identity=str(tmp_path / "nope")))


def test_silent_server_times_out_within_timeout(sshd: SSHServer) -> None:
    with socket.socket() as listener:  # accepts (the kernel does) but never sends a banner
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(TunnelError) as err:
            connect("127.0.0.1", port, sshd.config(timeout=1.0))
        elapsed = time.monotonic() - start
    assert str(err.value) == f"Unable to SSH to root@127.0.0.1:{port}: timed out after 1s waiting for the SSH banner"
    assert 0.9 < elapsed < 1.8


def test_not_an_ssh_server(sshd: SSHServer) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                time.sleep(0.5)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(TunnelError) as err:
            connect("127.0.0.1", port, sshd.config(timeout=3.0))
        thread.join()
    assert str(err.value).startswith(f"Unable to SSH to root@127.0.0.1:{port}: SSH negotiation failed")
    assert "\n" not in str(err.value)
