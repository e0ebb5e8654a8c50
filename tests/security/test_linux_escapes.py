# ruff: noqa: F811  (the fixtures are imported below so the module also runs without conftest)
"""Escape probes on Linux: a hostile root inside a pot tries the exec window, device nodes, the
kernel interfaces a seccomp filter closes, and pid 1's view of the host. Each probe is one case
that asserts the attack fails; the probes run `driver_probe.c`, built statically here and copied into
the pot's root (a busybox root has no compiler or scripting language)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladle.hosts.linux.launch import find_init
from ladle.storage.snapshotter import Mount
from tests.linux_fixtures import Pots, busybox_root, pots  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SECRET = "ladle-probe-secret-7f3a"
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_ADD_KEY, _SYS_KEYCTL = 248, 250  # x86-64
_KEY_SPEC_USER_KEYRING, _KEYCTL_UNLINK = -4, 9


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the static probe")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(Path(__file__).with_name("driver_probe.c"))],
                   check=True, capture_output=True)
    return out


def in_pot(pots: Pots, probe: Path, *args: str, mounts: list[Mount] | None = None, **attrs: str) -> str:
    """Run `probe ARGS` as a pot's command; its output."""
    spec = pots.spec(shlex.join(["/probe", *args]), mounts=mounts, **attrs)
    shutil.copy(probe, pots.upper() / "probe")
    pots.start(spec)
    run = pots.wait_exit()
    assert run.state == "exited"
    return pots.log().strip()


def denied(out: str, *errnos: int) -> bool:
    return out.startswith("denied ") and (not errnos or int(out.split()[1]) in errnos)


# 1. The exec window ------------------------------------------------------------------------

def test_exec_window_never_shows_the_host(pots: Pots, probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher in the pot opens every /proc/PID/fd/N, root, cwd and environ it can while 100
    `exec`s run: nothing it opens may be of the host, no link may name the state root, no
    environment may hold the operator's secret."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    spec = pots.spec(shlex.join(["/probe", "watch", "120", str(pots.base), SECRET]))
    shutil.copy(probe, pots.upper() / "probe")
    pots.start(spec)
    null = os.open("/dev/null", os.O_RDWR)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        codes = [pots.exec(spec, ["true"]) for _ in range(100)]
        pots.exec(spec, ["touch", "/stop"])
    finally:
        for fd, old in enumerate(saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)
    assert codes == [0] * 100
    pots.wait_exit()
    log = pots.log()
    assert "HOST" not in log, log
    assert log.strip().splitlines()[-1].startswith("scans "), log


def test_command_holds_only_its_stdio(pots: Pots, probe: Path) -> None:
    assert in_pot(pots, probe, "fds") == "0 1 2"


def test_exec_holds_only_its_stdio(pots: Pots, probe: Path) -> None:
    spec = pots.spec("sleep 100")
    shutil.copy(probe, pots.upper() / "probe")
    pots.start(spec)
    assert pots.exec(spec, ["sh", "-c", "/probe fds > /fds.out"]) == 0
    assert (pots.upper() / "fds.out").read_text().strip() == "0 1 2"


# 4. pid 1 and the environment --------------------------------------------------------------

def test_pid1_environ_holds_nothing_of_the_operator(pots: Pots, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    pots.start(pots.spec("sh -c 'wc -c < /proc/1/environ; cat /proc/1/environ'"))
    pots.wait_exit()
    out = pots.log()
    assert SECRET not in out and out.split()[0] == "0", out


def test_pid1_exe_is_no_host_file(pots: Pots) -> None:
    pots.start(pots.spec("md5sum /proc/1/exe"))
    pots.wait_exit()
    got = pots.log().split()[0]
    assert got != hashlib.md5(Path(os.path.realpath(sys.executable)).read_bytes()).hexdigest()
    assert got == hashlib.md5(Path(find_init()).read_bytes()).hexdigest()  # the sealed catatonit


def test_pid1_holds_no_host_file_open(pots: Pots) -> None:
    """pid 1 opened /dev/null before it pivoted: /proc/1/fd/0 then reached the host's node."""
    pots.start(pots.spec("sh -c 'for f in 0 1 2; do stat -L -c %d:%i /proc/1/fd/$f; done; stat -c %d:%i /dev/null'"))
    pots.wait_exit()
    *held, own = pots.log().split()
    assert held == [own] * 3, pots.log()  # its stdio is the pot's own /dev/null


def test_command_environment_is_the_pots_own(pots: Pots, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    pots.start(pots.spec("cat /proc/self/environ", env={"GREETING": "hi"}))
    pots.wait_exit()
    names = {kv.split("=", 1)[0] for kv in pots.log().split("\0") if kv}
    assert names <= {"PATH", "HOME", "HOSTNAME", "TERM", "GREETING", "LADLE_TEST_MARK"}, names


def test_exec_environment_is_the_pots_own(pots: Pots, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    spec = pots.spec("sleep 100")
    pots.start(spec)
    assert pots.exec(spec, ["sh", "-c", "cat /proc/self/environ > /env.out"]) == 0
    env = (pots.upper() / "env.out").read_text()
    assert SECRET not in env and "AWS_SECRET_ACCESS_KEY" not in env, env


# 2. Devices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,major,minor", [
    ("b", 7, 0),    # a loop device
    ("b", 8, 0),    # a whole disk
    ("c", 1, 1),    # /dev/mem
    ("c", 1, 2),    # /dev/kmem
    ("c", 1, 11),   # /dev/kmsg
    ("c", 10, 237),  # /dev/loop-control
    ("c", 1, 3),    # even a harmless /dev/null: no CAP_MKNOD at all
])
def test_mknod_is_refused(pots: Pots, probe: Path, kind: str, major: int, minor: int) -> None:
    assert denied(in_pot(pots, probe, "mknod", "/node", kind, str(major), str(minor)))


@pytest.mark.parametrize("kind,major,minor", [("b", 7, 0), ("c", 1, 11)])
def test_node_planted_in_the_root_opens_nothing(pots: Pots, probe: Path, kind: str, major: int, minor: int) -> None:
    """A node that came with the base or a tarball (here: made by the host in the pot's tree)."""
    spec_name = "web"
    pots.spec("true", name=spec_name)
    mode = 0o600 | (0o060000 if kind == "b" else 0o020000)
    os.mknod(pots.upper() / "planted", mode, os.makedev(major, minor))
    assert denied(in_pot(pots, probe, "open", "/planted"), 13)


def test_node_in_a_mounted_in_directory_opens_nothing(pots: Pots, probe: Path, tmp_path: Path) -> None:
    src = tmp_path / "hostdir"
    src.mkdir()
    os.mknod(src / "kmsg", 0o600 | 0o020000, os.makedev(1, 11))
    out = in_pot(pots, probe, "open", "/mnt/in/kmsg", mounts=[Mount("bind", str(src), "/mnt/in")])
    assert denied(out, 13)


def test_pots_own_dev_null_works(pots: Pots, probe: Path) -> None:
    """The counter-probe: nodev is on everything but the pot's /dev."""
    assert in_pot(pots, probe, "open", "/dev/null").startswith("ok ")


@pytest.mark.parametrize("fstype", ["devtmpfs", "proc", "sysfs", "tmpfs", "cgroup2"])  # cgroup2: leave its cgroup
def test_new_mount_is_refused(pots: Pots, probe: Path, fstype: str) -> None:
    assert denied(in_pot(pots, probe, "mount", fstype, "/mnt"))


def test_fsopen_is_refused(pots: Pots, probe: Path) -> None:
    assert denied(in_pot(pots, probe, "fsopen", "devtmpfs"))


# 3. Seccomp ---------------------------------------------------------------------------------

@pytest.fixture
def host_key() -> Iterator[int]:
    """A secret in the host root's user keyring."""
    serial = _libc.syscall(_SYS_ADD_KEY, b"user", b"ladle-probe", SECRET.encode(), len(SECRET),
                           _KEY_SPEC_USER_KEYRING)
    if serial < 0:
        pytest.skip(f"cannot add a key: {os.strerror(ctypes.get_errno())}")
    try:
        yield serial
    finally:
        _libc.syscall(_SYS_KEYCTL, _KEYCTL_UNLINK, serial, _KEY_SPEC_USER_KEYRING)


def test_host_keyring_is_out_of_reach(pots: Pots, probe: Path, host_key: int) -> None:
    out = in_pot(pots, probe, "keyctl-read", str(host_key))
    assert SECRET not in out and denied(out, 1), out


def test_unconfined_pot_reads_the_host_keyring(pots: Pots, probe: Path, host_key: int) -> None:
    """Inverted: seccomp=unconfined really relaxes the filter (and shows the probe above can fail)."""
    assert in_pot(pots, probe, "keyctl-read", str(host_key), seccomp="unconfined") == f"ok {SECRET}"


@pytest.mark.parametrize("call", ["keyctl-user", "add-key", "bpf", "perf", "userfaultfd", "unshare-user",
                                  "clone-user", "kexec", "name-to-handle", "open-by-handle", "setns",
                                  "settime"])
def test_syscall_is_refused(pots: Pots, probe: Path, call: str) -> None:
    assert denied(in_pot(pots, probe, call))


def test_clone3_says_enosys_so_libc_falls_back(pots: Pots, probe: Path) -> None:
    assert denied(in_pot(pots, probe, "clone3"), 38)


def test_busybox_unshare_user_fails(pots: Pots) -> None:
    pots.start(pots.spec("sh -c 'unshare -U true && echo escaped || echo refused'"))
    pots.wait_exit()
    assert pots.log().strip().splitlines()[-1] == "refused"


def test_unconfined_pot_may_perf_event_open(pots: Pots, probe: Path) -> None:
    """Inverted: the same call works without the filter, so the refusal above is the filter's."""
    assert in_pot(pots, probe, "perf", seccomp="unconfined").startswith("ok ")
