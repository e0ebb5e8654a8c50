"""Escape probes for copy-in and copy-out: the pot plants FIFOs, device nodes, sockets, symbolic
links out of its root and setuid-root files where a copy goes, as a hostile root in it would.
A copy must never block, never write into a planted FIFO or device, never follow a link out of
the pot, and never land a setuid or setgid file on the host unless asked (`copy-out -k`).

The planted files are made from the host, in the pot's tree (its writable layer), since a pot
has no CAP_MKNOD; each probe runs on a stopped pot (a private mount of its tree) and a running one
(the copy joins its mount namespace)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle, _teardown

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

TIMEOUT = 20  # a copy that blocks on a FIFO is killed, and the probe fails
SETID = stat.S_ISUID | stat.S_ISGID


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ladle]:
    ladle = Ladle(tmp_path_factory.mktemp("copy") / "root")
    ladle("init")
    ladle("create-base", "-r", "busybox")
    yield ladle
    _teardown(ladle)
    ladle("destroy", "-b", "busybox", "-r", "-F", check=False)


@pytest.fixture(params=["stopped", "running"])
def pot(request: pytest.FixtureRequest, cli: Ladle) -> Iterator[Path]:
    """A pot `c` of the busybox base, stopped or running; its writable tree on the host."""
    cli("create", "-p", "c", "-b", "busybox", "-c", "sleep 1000000")
    info = cli("info", "-p", "c").stdout
    [tree] = [line.split()[-1] for line in info.splitlines() if line.startswith("storage:")]
    if request.param == "running":
        cli("start", "c")
    yield Path(tree)
    cli("stop", "c", check=False)
    cli("destroy", "-p", "c", "-F")


def copy(cli: Ladle, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(verb, "-p", "c", *args, check=False, timeout=TIMEOUT)


def source(tmp_path: Path, text: str = "from the host\n") -> Path:
    f = tmp_path / "src"
    f.write_text(text)
    return f


def regular_with(path: Path, text: str) -> bool:
    st = path.lstat()
    return stat.S_ISREG(st.st_mode) and path.read_text() == text


def one_line_refusal(proc: subprocess.CompletedProcess[str], *words: str) -> bool:
    lines = proc.stderr.strip().splitlines()
    return (proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("ladle: ")
            and all(w.lower() in lines[0].lower() for w in words))


# copy-in ------------------------------------------------------------------------------------

def test_copy_in_onto_a_planted_fifo_replaces_it(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    os.mkfifo(pot / "target")
    proc = copy(cli, "copy-in", "-s", str(source(tmp_path)), "-d", "/target")
    assert proc.returncode == 0, proc.stderr
    assert regular_with(pot / "target", "from the host\n")


def test_copy_in_of_a_tree_replaces_a_fifo_planted_inside(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("nested\n")
    (pot / "d").mkdir()
    os.mkfifo(pot / "d" / "f")
    proc = copy(cli, "copy-in", "-s", str(tmp_path / "d"), "-d", "/")
    assert proc.returncode == 0, proc.stderr
    assert regular_with(pot / "d" / "f", "nested\n")


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK])
def test_copy_in_never_writes_into_a_planted_device(cli: Ladle, pot: Path, tmp_path: Path, kind: int) -> None:
    """A node of /dev/null (character) or of /dev/loop0 (block): the copy replaces it."""
    os.mknod(pot / "target", kind | 0o666, os.makedev(1, 3) if kind == stat.S_IFCHR else os.makedev(7, 0))
    proc = copy(cli, "copy-in", "-s", str(source(tmp_path)), "-d", "/target")
    assert proc.returncode == 0, proc.stderr
    assert regular_with(pot / "target", "from the host\n")


def test_copy_in_onto_a_planted_socket_replaces_it(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(pot / "target"))
        proc = copy(cli, "copy-in", "-s", str(source(tmp_path)), "-d", "/target")
    assert proc.returncode == 0, proc.stderr
    assert regular_with(pot / "target", "from the host\n")


def test_copy_in_onto_a_symlink_out_of_the_root_stays_in_the_pot(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (pot / "target").symlink_to(outside / "f")
    (pot / "up").symlink_to("../../../../../../../../.." + str(outside))
    assert copy(cli, "copy-in", "-s", str(source(tmp_path)), "-d", "/target").returncode == 0
    assert copy(cli, "copy-in", "-s", str(source(tmp_path)), "-d", "/up/g", "-c").returncode == 0
    assert not list(outside.iterdir())
    assert regular_with(pot / "target", "from the host\n")


def test_copy_in_never_blocks_while_the_pot_keeps_planting_fifos(cli: Ladle, tmp_path: Path) -> None:
    """The running pot's command replaces the target with a FIFO as fast as it can."""
    cli("create", "-p", "racer", "-b", "busybox", "-c", "while :; do rm -f /target; mkfifo /target; done")
    cli("start", "racer")
    try:
        src = str(source(tmp_path))
        procs = [cli("copy-in", "-p", "racer", "-s", src, "-d", "/target", check=False, timeout=TIMEOUT)
                 for _ in range(20)]
        assert [p.returncode for p in procs] == [0] * 20, procs[-1].stderr
    finally:
        cli("stop", "racer", check=False)
        cli("destroy", "-p", "racer", "-F")


def test_copy_in_refuses_a_host_device_as_source(cli: Ladle, pot: Path) -> None:
    proc = copy(cli, "copy-in", "-s", "/dev/null", "-d", "/null")
    assert one_line_refusal(proc, "/dev/null", "device")
    assert not os.path.lexists(pot / "null")


# copy-out -----------------------------------------------------------------------------------

def setuid_root(path: Path) -> None:
    shutil.copy("/bin/true", path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o6755)


def test_copy_out_drops_setuid_and_setgid(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    setuid_root(pot / "su")
    (pot / "tree").mkdir()
    setuid_root(pot / "tree" / "su")
    out = tmp_path / "out"
    out.mkdir()
    for path in ("/su", "/tree"):
        proc = copy(cli, "copy-out", "-s", path, "-d", str(out))
        assert proc.returncode == 0, proc.stderr
    for f in (out / "su", out / "tree" / "su"):
        st = f.lstat()
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)


def test_copy_out_keeps_setuid_when_asked(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    setuid_root(pot / "su")
    out = tmp_path / "out"
    out.mkdir()
    proc = copy(cli, "copy-out", "-s", "/su", "-d", str(out), "--keep-setuid")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((out / "su").lstat().st_mode) == 0o6755


@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_copy_out_refuses_a_special_source(cli: Ladle, pot: Path, tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(pot / "special")
    elif kind == "device":
        os.mknod(pot / "special", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    else:
        socket.socket(socket.AF_UNIX).bind(str(pot / "special"))
    out = tmp_path / "out"
    out.mkdir()
    proc = copy(cli, "copy-out", "-s", "/special", "-d", str(out))
    assert one_line_refusal(proc, "/special", kind if kind != "device" else "device node")
    assert not list(out.iterdir())


def test_copy_out_of_a_tree_skips_its_special_files(cli: Ladle, pot: Path, tmp_path: Path) -> None:
    (pot / "tree").mkdir()
    (pot / "tree" / "f").write_text("kept\n")
    os.mkfifo(pot / "tree" / "fifo")
    os.mknod(pot / "tree" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out = tmp_path / "out"
    out.mkdir()
    proc = copy(cli, "copy-out", "-s", "/tree", "-d", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "tree").iterdir()) == ["f"]
    assert "fifo" in proc.stderr and "null" in proc.stderr
