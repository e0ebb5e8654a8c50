"""Escape probes for `ladle commit` where a pot's tree is whole (ZFS, FreeBSD's dir storage): the
pot's root made the tree the diff reads, and an image's layers the parent tree. A link in either
is a link in the layer, never the host file or directory it names; a directory swapped for a link
is whited out and the link added, nothing read through it; a fifo does not hang the commit; and
an mtime set back does not hide a changed file where inode numbers prove nothing (copies)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ladle.errors import UsageError
from ladle.images.treediff import Bounds, write_diff
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_commit_zfs import made, top_layer, views, zfs  # noqa: F401  (a fixture)
from tests.test_images_run import pushed  # noqa: F401  (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

HOSTILE = ("ln -s /etc/shadow /srv/shadow; ln -s ../../../../../../../../etc/passwd /srv/up;"
           " ln -s /proc/1/root /srv/hostroot; rm -r /opt/old; ln -s /etc /opt/old; mkfifo /srv/fifo")
BOUNDS = Bounds(1 << 30, 10_000, 64)


def _host_bytes() -> set[bytes]:
    return {Path(p).read_bytes() for p in ("/etc/passwd", "/etc/shadow", "/etc/hostname") if os.path.exists(p)}


def _read(tar: tarfile.TarFile) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Each member and its bytes, in the tar's order; none carries a host file's bytes."""
    out = {}
    for m in tar.getmembers():
        f = tar.extractfile(m) if m.isreg() else None
        out[m.name] = (m, f.read() if f else b"")
        assert not m.isreg() or out[m.name][1] not in _host_bytes(), m.name
    return out


def test_links_in_a_zfs_pot_stay_links_in_the_layer(zfs: tuple, pushed: dict[str, str]) -> None:  # noqa: F811
    cli, dataset = zfs
    made(cli, pushed["gzip"], HOSTILE)
    cli("commit", "-p", "work", "localhost/hostile:1", timeout=60)
    with top_layer(cli, "localhost/hostile:1") as tar:
        members = {name: m for name, (m, _) in _read(tar).items()}
    assert members["srv/shadow"].issym() and members["srv/shadow"].linkname == "/etc/shadow"
    assert members["srv/up"].issym() and members["srv/hostroot"].linkname == "/proc/1/root"
    names = list(members)
    assert names.index("opt/.wh.old") < names.index("opt/old") and members["opt/old"].issym()
    assert not [n for n in names if n.startswith("opt/old/")] and "srv/fifo" not in names
    assert views(dataset) == []


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    """A parent tree and a full copy of it (as FreeBSD's dir storage makes a pot's)."""
    parent = tmp_path / "parent"
    for d in ("etc", "opt/old", "srv"):
        (parent / d).mkdir(parents=True)
    (parent / "etc" / "motd").write_text("one\n")
    (parent / "opt" / "old" / "a").write_text("a\n")
    pot = tmp_path / "pot"
    subprocess.run(["cp", "-a", str(parent), str(pot)], check=True)
    return parent, pot


def _diff(tmp_path: Path, parent: Path, pot: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = tmp_path / "layer.tar"
    write_diff(str(parent), str(pot), str(out), clone=False, bounds=BOUNDS, skip=frozenset())
    with tarfile.open(out) as tar:
        return _read(tar)


def test_a_copy_diff_reads_no_link_of_the_pot(tmp_path: Path) -> None:
    parent, pot = _trees(tmp_path)
    (pot / "srv" / "shadow").symlink_to("/etc/shadow")
    shutil.rmtree(pot / "opt" / "old")
    (pot / "opt" / "old").symlink_to("/etc")
    os.mkfifo(pot / "srv" / "fifo")
    members = _diff(tmp_path, parent, pot)
    assert members["srv/shadow"][0].issym() and members["opt/old"][0].issym() and "opt/.wh.old" in members
    assert not [n for n in members if n.startswith("opt/old/")] and "srv/fifo" not in members


def test_a_link_in_the_parent_is_not_followed_to_compare(tmp_path: Path) -> None:
    """The parent (an image's layers) has `d` -> a host directory, where the pot has a directory
    holding a copy of the host's file: followed, the copy would look unchanged and be left out."""
    parent, pot = _trees(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    (parent / "d").symlink_to(host)
    (pot / "d").mkdir()
    shutil.copy2(host / "secret", pot / "d" / "secret")
    members = _diff(tmp_path, parent, pot)
    assert ".wh.d" in members and members["d"][0].isdir() and members["d/secret"][1] == b"host secret\n"


def test_a_change_under_a_forged_mtime_is_in_a_copy_diff(tmp_path: Path) -> None:
    parent, pot = _trees(tmp_path)
    st = os.stat(pot / "etc" / "motd")
    (pot / "etc" / "motd").write_text("two\n")  # the same size
    os.utime(pot / "etc" / "motd", ns=(st.st_atime_ns, st.st_mtime_ns))
    members = _diff(tmp_path, parent, pot)
    assert members["etc/motd"][1] == b"two\n"
    assert "opt/old/a" not in members  # and what is the same is left out


def test_a_diff_is_bounded(tmp_path: Path) -> None:
    parent, pot = _trees(tmp_path)
    deep = pot.joinpath(*["d"] * 70)
    deep.mkdir(parents=True)
    with pytest.raises(UsageError, match="deeper than 64 directories"):
        _diff(tmp_path, parent, pot)
