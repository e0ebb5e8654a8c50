"""Escape probes through the kernel's interfaces: system calls the seccomp filter refuses, device
nodes, and what pid 1 and the command show of the host. Each asserts that the attack fails."""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LADLE, Ladle
from tests.security.conftest import probe

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_ADD_KEY, _SYS_KEYCTL = 248, 250  # x86-64
KEY_SPEC_USER_KEYRING, KEYCTL_REVOKE = -4, 3


@pytest.fixture
def host_secret() -> Iterator[str]:
    """A key in the host root's user keyring, which every uid-0 process shares by default."""
    secret = os.urandom(8).hex()
    key = _libc.syscall(_SYS_ADD_KEY, b"user", b"ladle-probe", secret.encode(), len(secret),
                        KEY_SPEC_USER_KEYRING)
    assert key > 0, os.strerror(ctypes.get_errno())
    yield secret
    _libc.syscall(_SYS_KEYCTL, KEYCTL_REVOKE, key)


def test_the_host_roots_keyring_is_out_of_reach(hostile: Ladle, host_secret: str) -> None:
    out = hostile("exec", "hostile", "--", "/probe", "keyctl-read", "ladle-probe", check=False).stdout
    assert host_secret not in out
    assert out.strip() == "DENIED EPERM"


def test_seccomp_unconfined_is_what_lets_the_keyring_through(hostile: Ladle, host_secret: str,
                                                             probe_binary: Path) -> None:
    """The inverted probe: the same pot without the filter reads the key, so the filter is what
    stops it (and the attribute relaxes it)."""
    hostile("create", "-p", "loose", "-b", "busybox", "-c", "sleep 1000000")
    try:
        hostile("set-attr", "-p", "loose", "-A", "seccomp", "-V", "unconfined")
        hostile("copy-in", "-p", "loose", "-s", str(probe_binary), "-d", "/probe")
        hostile("start", "loose")
        out = hostile("exec", "loose", "--", "/probe", "keyctl-read", "ladle-probe", check=False).stdout
        assert f"secret: {host_secret}" in out
    finally:
        hostile("destroy", "-p", "loose", "-F", check=False)


SYSCALLS = [
    ("add-key",), ("bpf",), ("perf-event-open",), ("userfaultfd",), ("unshare-user",), ("clone-user",),
    ("kexec-load",), ("open-by-handle",), ("init-module",), ("mount-proc",), ("mount-devtmpfs",),
    ("remount-root-rw",), ("unshare-mount",), ("iopl",), ("ioperm",), ("swapoff",), ("clock-settime",),
    ("io-uring",),
]


@pytest.mark.parametrize("args", SYSCALLS, ids=[a[0] for a in SYSCALLS])
def test_dangerous_system_calls_are_refused(hostile: Ladle, args: tuple[str, ...]) -> None:
    assert probe(hostile, "hostile", *args).startswith("DENIED")


DEVICES = [("mknod-block", "7:0"), ("mknod-block", "8:0"), ("mknod-block", "254:0"), ("mknod-char", "1:1"),
           ("mknod-char", "1:2"), ("mknod-char", "1:11"), ("mknod-char", "1:4"), ("mknod-char", "10:237"),
           ("mknod-char", "4:1")]


@pytest.mark.parametrize(("kind", "dev"), DEVICES, ids=[f"{k}-{d}" for k, d in DEVICES])
def test_no_device_node_can_be_made(hostile: Ladle, kind: str, dev: str) -> None:
    for where in ("/node", "/dev/node", "/tmp/node"):
        assert probe(hostile, "hostile", kind, where, dev) == "DENIED EPERM"


@pytest.mark.parametrize(("kind", "dev"), [("char", (1, 1)), ("char", (1, 11)), ("block", (7, 0))],
                         ids=["mem", "kmsg", "loop0"])
def test_device_nodes_planted_by_the_host_side_open_nothing(hostile: Ladle, tmp_path: Path, kind: str,
                                                            dev: tuple[int, int], probe_binary: Path) -> None:
    """A node that reached the pot from a host directory (a mount-in) or its own tree (an image,
    a base) is on a nodev mount: opening it fails."""
    data = tmp_path / "data"
    data.mkdir()
    mode = 0o666 | (0o020000 if kind == "char" else 0o060000)
    os.mknod(data / "node", mode, os.makedev(*dev))
    hostile("create", "-p", "planted", "-b", "busybox", "-c", "sleep 1000000")
    try:
        hostile("mount-in", "-p", "planted", "-d", str(data), "-m", "/data")
        hostile("copy-in", "-p", "planted", "-s", str(probe_binary), "-d", "/probe")
        hostile("start", "planted")
        assert probe(hostile, "planted", "open-rw", "/data/node") == "DENIED EACCES"
        # the pot's own /dev works, and is the only place where a node opens
        assert probe(hostile, "planted", "open-rw", "/dev/null") == "ALLOWED"
    finally:
        hostile("destroy", "-p", "planted", "-F", check=False)


def test_pid1_shows_nothing_of_the_operator(hostile: Ladle) -> None:
    hostile("create", "-p", "quiet", "-b", "busybox", "-c", "sleep 1000000")
    try:
        env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "hunter2-from-the-operator"}
        subprocess.run([*LADLE, "--root", str(hostile.root), "start", "quiet"], env=env, check=True,
                       capture_output=True)
        environ = hostile("exec", "quiet", "--", "cat", "/proc/1/environ").stdout
        assert "hunter2" not in environ and environ == ""
        own = hostile("exec", "quiet", "--", "sh", "-c", "cat /proc/$$/environ | tr '\\0' '\\n'").stdout
        assert "hunter2" not in own and "AWS_" not in own
        exe = hostile("exec", "quiet", "--", "md5sum", "/proc/1/exe").stdout.split()[0]
        python = hashlib.md5(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest()
        assert exe != python
        assert hostile("exec", "quiet", "--", "readlink", "/proc/1/exe").stdout.startswith("/memfd:catatonit")
    finally:
        hostile("destroy", "-p", "quiet", "-F", check=False)


def test_the_command_holds_no_host_descriptor(hostile: Ladle) -> None:
    fds = hostile("exec", "hostile", "--", "ls", "/proc/self/fd").stdout.split()
    assert sorted(fds) == ["0", "1", "2", "3"]  # ls's own directory is 3
    links = hostile("exec", "hostile", "--", "sh", "-c", "ls -l /proc/1/fd/ 2>&1; echo end").stdout
    assert "ladle" not in links and "pytest" not in links


def test_the_capability_set_has_no_mknod_and_no_admin(hostile: Ladle) -> None:
    status = hostile("exec", "hostile", "--", "grep", "Cap", "/proc/self/status").stdout
    fields = dict(line.split(":\t") for line in status.splitlines())
    eff = int(fields["CapEff"], 16)
    assert not eff & (1 << 27) and not eff & (1 << 21) and not eff & (1 << 19)  # MKNOD, SYS_ADMIN, SYS_PTRACE
    assert int(fields["CapBnd"], 16) == eff
    assert "Seccomp:\t2" in hostile("exec", "hostile", "--", "grep", "Seccomp", "/proc/1/status").stdout
