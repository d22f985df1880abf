"""Host-key policy: the file format, strict/non-strict, prompts, hashed entries, and real sshd handshakes."""

from __future__ import annotations

import time
from pathlib import Path

import paramiko
import pytest

from fleetpy.errors import HostKeyError
from fleetpy.ssh.client import connect
from fleetpy.ssh.known_hosts import KnownHosts, NoTerminal, fingerprint, host_entry

from .conftest import SSHServer


@pytest.fixture(scope="module")
def key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


@pytest.fixture(scope="module")
def other_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


def no_terminal(question: str) -> bool:
    raise NoTerminal


class answer:  # lower case: reads as a function in the tests
    """A Confirm that gives a fixed reply and remembers the questions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.asked: list[str] = []

    def __call__(self, question: str) -> bool:
        self.asked.append(question)
        return self.text.strip().lower() in ("y", "yes")


@pytest.mark.parametrize(("host", "port", "entry"), [
    pytest.param("10.0.0.1", 22, "10.0.0.1", id="port-22-plain"),
    pytest.param("10.0.0.1", 2222, "[10.0.0.1]:2222", id="other-port-bracketed"),
    pytest.param("::1", 2222, "[::1]:2222", id="ipv6"),
])
def test_host_entry(host: str, port: int, entry: str) -> None:
    assert host_entry(host, port) == entry


def test_fingerprint_is_openssh_sha256(key: paramiko.PKey) -> None:
    assert fingerprint(key).startswith("SHA256:") and not fingerprint(key).endswith("=")


def test_unknown_host_refused_without_terminal(tmp_path: Path, key: paramiko.PKey) -> None:
    path = tmp_path / "kh"
    with pytest.raises(HostKeyError, match=r"host key for \[h\]:2222 is unknown .*no terminal") as err:
        KnownHosts(path, confirm=no_terminal).verify("h", 2222, key)
    assert "\n" not in str(err.value)
    assert not path.exists()


@pytest.mark.parametrize("reply", ["y", "yes", "YES\n"])
def test_unknown_host_accepted_on_yes_and_remembered(tmp_path: Path, key: paramiko.PKey, reply: str) -> None:
    path = tmp_path / "sub" / "kh"
    confirm = answer(reply)
    KnownHosts(path, confirm=confirm).verify("h", 2222, key)
    assert "can't be established" in confirm.asked[0] and fingerprint(key) in confirm.asked[0]
    assert path.read_text() == f"[h]:2222 {key.get_name()} {key.get_base64()}\n"
    assert path.parent.stat().st_mode & 0o777 == 0o700
    KnownHosts(path, confirm=no_terminal).verify("h", 2222, key)  # known now: no question


@pytest.mark.parametrize("reply", ["n", "no", "", "yess"])
def test_unknown_host_refused_on_anything_but_yes(tmp_path: Path, key: paramiko.PKey, reply: str) -> None:
    path = tmp_path / "kh"
    with pytest.raises(HostKeyError, match="was not accepted"):
        KnownHosts(path, confirm=answer(reply)).verify("h", 22, key)
    assert not path.exists()


def test_non_strict_records_unknown_host_silently(tmp_path: Path, key: paramiko.PKey) -> None:
    path = tmp_path / "kh"
    KnownHosts(path, strict=False, confirm=no_terminal).verify("h", 22, key)
    assert path.read_text().startswith(f"h {key.get_name()} ")


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_changed_key_always_refused(tmp_path: Path, key: paramiko.PKey, other_key: paramiko.PKey,
                                    strict: bool) -> None:
    path = tmp_path / "kh"
    KnownHosts(path, strict=False).add("h", 22, key)
    with pytest.raises(HostKeyError, match="host key for h has CHANGED") as err:
        KnownHosts(path, strict=strict, confirm=answer("yes")).verify("h", 22, other_key)
    assert "\n" not in str(err.value) and fingerprint(other_key) in str(err.value)
    assert path.read_text().count("\n") == 1  # not recorded


def test_hashed_entries_are_read(tmp_path: Path, key: paramiko.PKey, other_key: paramiko.PKey) -> None:
    path = tmp_path / "kh"
    hashed = paramiko.HostKeys.hash_host("[h]:2222")
    path.write_text(f"# comment\n{hashed} {key.get_name()} {key.get_base64()}\n")
    KnownHosts(path, confirm=no_terminal).verify("h", 2222, key)
    with pytest.raises(HostKeyError, match="CHANGED"):
        KnownHosts(path, confirm=no_terminal).verify("h", 2222, other_key)


def test_append_keeps_existing_lines(tmp_path: Path, key: paramiko.PKey) -> None:
    path = tmp_path / "kh"
    path.write_text("other ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
    KnownHosts(path, strict=False).verify("h", 22, key)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("h ")


# -- against a real sshd ------------------------------------------------------------------------------------
def test_sshd_unknown_host_refused_without_terminal(sshd: SSHServer, tmp_path: Path) -> None:
    config = sshd.config(known_hosts=KnownHosts(tmp_path / "kh", confirm=no_terminal))
    with pytest.raises(HostKeyError) as err:
        connect(sshd.host, sshd.port, config)
    message = str(err.value)
    assert message.startswith(f"Unable to SSH to root@127.0.0.1:{sshd.port}: host key for [127.0.0.1]:{sshd.port}")
    assert "unknown" in message and "\n" not in message


def test_sshd_accepted_once_added(sshd: SSHServer, tmp_path: Path) -> None:
    path = tmp_path / "kh"
    with connect(sshd.host, sshd.port, sshd.config(known_hosts=KnownHosts(path, confirm=answer("yes")))):
        pass
    assert path.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    with connect(sshd.host, sshd.port, sshd.config(known_hosts=KnownHosts(path, confirm=no_terminal))) as conn:
        assert conn.transport.is_authenticated()


def test_sshd_changed_key_refused(sshd: SSHServer, tmp_path: Path) -> None:
    path = tmp_path / "kh"
    impostor = paramiko.Ed25519Key.from_private_key_file(str(_new_ed25519(tmp_path)))
    path.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {impostor.get_base64()}\n")
    start = time.monotonic()
    with pytest.raises(HostKeyError, match="CHANGED"):
        connect(sshd.host, sshd.port, sshd.config(known_hosts=KnownHosts(path, strict=False)))
    assert time.monotonic() - start < 5


def _new_ed25519(directory: Path) -> Path:
    import subprocess

    path = directory / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_terminal_confirm_asks_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import pty
    import sys

    from fleetpy.ssh.known_hosts import terminal_confirm

    master, slave = pty.openpty()
    with os.fdopen(os.dup(slave), "r") as tty_in, os.fdopen(os.dup(slave), "w") as tty_err:
        monkeypatch.setattr(sys, "stdin", tty_in)
        monkeypatch.setattr(sys, "stderr", tty_err)
        os.write(master, b"yes\n")
        assert terminal_confirm("Are you sure you want to continue connecting (yes/no)? ")
        os.write(master, b"nope\n")
        assert not terminal_confirm("again? ")
    shown = os.read(master, 4096)
    os.close(master)
    os.close(slave)
    assert b"Are you sure you want to continue connecting (yes/no)? " in shown


def test_terminal_confirm_without_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from fleetpy.ssh.known_hosts import terminal_confirm

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    with pytest.raises(NoTerminal):
        terminal_confirm("?")
