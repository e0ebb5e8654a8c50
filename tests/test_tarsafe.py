"""Safe tar extraction: what a rootfs needs is kept, anything that could write outside is refused."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ladle.errors import UsageError
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Context, Step
from ladle.storage.tarsafe import ExtractTar, Limits, extract

Member = tuple[str, str, str, bytes]  # (type, name, linkname, data); type is f, d, l (sym), h (hard), c, b, p


def make_tar(path: Path, members: list[Member], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for kind, name, link, data in members:
            info = tarfile.TarInfo(name)
            info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE,
                         "h": tarfile.LNKTYPE, "c": tarfile.CHRTYPE, "b": tarfile.BLKTYPE,
                         "p": tarfile.FIFOTYPE}[kind]
            info.linkname = link
            info.mode = 0o755 if kind == "d" else 0o644
            info.mtime = 1_600_000_000
            info.size = len(data) if kind == "f" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "f" else None)
    return path


def listing(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under root: type bits and content (file bytes or link target)."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            body: bytes | str = b""
            if stat.S_ISLNK(mode):
                body = os.readlink(p)
            elif stat.S_ISREG(mode):
                body = Path(p).read_bytes()
            found[os.path.relpath(p, root)] = (stat.S_IFMT(mode), body)
    return found


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(dest, outside): an extraction target holding one file, and a sibling it must not touch."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "keep").write_text("kept")
    (outside / "f").write_text("outside")
    yield dest, outside


def test_a_rootfs_keeps_modes_owners_times_and_links(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, _ = box
    path = tmp_path / "root.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, mode, link in [("./", tarfile.DIRTYPE, 0o755, ""),
                                       ("./bin", tarfile.DIRTYPE, 0o755, ""),
                                       ("./bin/busybox", tarfile.REGTYPE, 0o4755, ""),
                                       ("./bin/sh", tarfile.SYMTYPE, 0o777, "/bin/busybox"),
                                       ("./bin/ls", tarfile.SYMTYPE, 0o777, "busybox"),
                                       ("./bin/su", tarfile.LNKTYPE, 0o4755, "bin/busybox"),
                                       ("./tmp", tarfile.DIRTYPE, 0o1777, ""),
                                       ("./etc/deep/file", tarfile.REGTYPE, 0o600, "")]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.uid, info.gid, info.mtime = 1234, 5678, 1_600_000_000
            data = b"#!busybox" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    extract(str(path), str(dest))
    busybox = os.lstat(dest / "bin/busybox")
    assert stat.S_IMODE(busybox.st_mode) == 0o4755
    assert (busybox.st_uid, busybox.st_gid) == ((1234, 5678) if os.geteuid() == 0 else (os.getuid(), os.getgid()))
    assert busybox.st_mtime == 1_600_000_000
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.readlink(dest / "bin/ls") == "busybox"
    assert os.lstat(dest / "bin/su").st_ino == busybox.st_ino
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.lstat(dest / "bin").st_mtime == 1_600_000_000
    assert (dest / "etc/deep/file").read_bytes() == b"#!busybox"
    assert (dest / "keep").read_text() == "kept"


@pytest.mark.parametrize("mode", ["w:xz", "w:bz2", "w"])
def test_compression_is_detected(tmp_path: Path, box: tuple[Path, Path], mode: str) -> None:
    dest, _ = box
    extract(str(make_tar(tmp_path / "t", [("f", "a", "", b"x")], mode)), str(dest))
    assert (dest / "a").read_bytes() == b"x"


UNSAFE: list[tuple[list[Member], str]] = [
    ([("f", "../x", "", b"evil")], "unsafe tar member '../x': path escapes the destination"),
    ([("f", "a/../../x", "", b"evil")], "unsafe tar member 'a/../../x': path escapes the destination"),
    ([("f", "/etc/evil", "", b"evil")], "unsafe tar member '/etc/evil': absolute path"),
    ([("l", "esc", "../outside", b"")], "unsafe tar member 'esc': symlink target '../outside' escapes"),
    ([("l", "esc", "/", b""), ("f", "esc/f", "", b"evil")],
     "unsafe tar member 'esc/f': path goes through the symlink 'esc'"),
    ([("d", "d", "", b""), ("l", "d/up", "..", b""), ("l", "d/esc", "up/../..", b"")],
     "unsafe tar member 'd/esc': symlink target 'up/../..' escapes"),
    ([("h", "hard", "../outside/f", b"")], "unsafe tar member 'hard': path escapes the destination"),
    ([("l", "sym", "/etc/shadow", b""), ("h", "hard", "sym", b"")],
     "unsafe tar member 'hard': hard link target 'sym' is not a regular file"),
    ([("h", "hard", "missing", b"")], "unsafe tar member 'hard': hard link target 'missing' is not"),
    ([("c", "tmp/null", "", b"")], "unsafe tar member 'tmp/null': device nodes are not allowed"),
    ([("b", "sda", "", b"")], "unsafe tar member 'sda': device nodes are not allowed"),
    ([("b", "devices/sda", "", b"")], "unsafe tar member 'devices/sda': device nodes are not allowed"),
    ([("p", "fifo", "", b"")], "unsafe tar member 'fifo': fifos are not allowed"),
    ([("f", "keep/x", "", b"")], "unsafe tar member 'keep/x': 'keep' is not a directory"),
]


@pytest.mark.parametrize(("members", "message"), UNSAFE, ids=[u[1].split(": ", 1)[-1][:40] for u in UNSAFE])
def test_unsafe_members_are_refused_before_anything_is_written(
        tmp_path: Path, box: tuple[Path, Path], members: list[Member], message: str) -> None:
    dest, _ = box
    before = listing(tmp_path)
    archive = make_tar(tmp_path / "t.tar", [("f", "first", "", b"written?"), *members])
    with pytest.raises(UsageError) as e:
        extract(str(archive), str(dest))
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)
    assert listing(tmp_path) == {**before, "t.tar": listing(tmp_path)["t.tar"]}


def test_device_nodes_under_dev_are_left_out(tmp_path: Path, box: tuple[Path, Path]) -> None:
    """A debootstrapped tree has /dev/null, /dev/console, ...: the tree unpacks without them (the
    pot's /dev is the host driver's), and the rest of /dev is kept."""
    dest, _ = box
    archive = make_tar(tmp_path / "t.tar", [("d", "dev", "", b""), ("c", "dev/null", "", b""),
                                            ("b", "./dev/sda", "", b""), ("d", "dev/pts", "", b""),
                                            ("c", "dev/pts/0", "", b""), ("f", "dev/README", "", b"kept\n")])
    extract(str(archive), str(dest))
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["dev", "dev/README", "dev/pts", "keep"]


def test_a_symlink_already_in_dest_is_not_followed(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, outside = box
    os.symlink(outside, dest / "link")
    with pytest.raises(UsageError, match="goes through the symlink 'link'"):
        extract(str(make_tar(tmp_path / "t.tar", [("f", "link/f", "", b"evil")])), str(dest))
    extract(str(make_tar(tmp_path / "u.tar", [("f", "link", "", b"replaced")])), str(dest))
    assert (dest / "link").read_bytes() == b"replaced" and not (dest / "link").is_symlink()
    assert (outside / "f").read_text() == "outside"


def test_a_symlink_member_is_replaced_not_written_through(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, outside = box
    members: list[Member] = [("l", "x", str(outside / "f"), b""), ("f", "x", "", b"evil")]
    extract(str(make_tar(tmp_path / "t.tar", members)), str(dest))
    assert (dest / "x").read_bytes() == b"evil"
    assert (outside / "f").read_text() == "outside"


def test_a_directory_over_a_symlink_does_not_chmod_its_target(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, outside = box
    os.chmod(outside, 0o700)
    os.symlink(outside, dest / "d")
    extract(str(make_tar(tmp_path / "t.tar", [("d", "d", "", b""), ("f", "d/f", "", b"in")])), str(dest))
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700
    assert not (dest / "d").is_symlink() and (dest / "d/f").read_bytes() == b"in"
    assert sorted(os.listdir(outside)) == ["f"]


def test_a_file_cannot_replace_a_directory(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, _ = box
    (dest / "dir").mkdir()
    with pytest.raises(UsageError, match="would replace a directory"):
        extract(str(make_tar(tmp_path / "t.tar", [("f", "dir", "", b"")])), str(dest))


def test_not_a_tarball(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, _ = box
    (tmp_path / "junk").write_bytes(b"\x00not a tar at all" * 100)
    with pytest.raises(UsageError, match="is not a tar archive"):
        extract(str(tmp_path / "junk"), str(dest))
    (tmp_path / "random").write_bytes(os.urandom(4096))
    with pytest.raises(UsageError, match="is not a tar archive"):
        extract(str(tmp_path / "random"), str(dest))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(UsageError, match="is empty"):
        extract(str(tmp_path / "empty"), str(dest))
    with pytest.raises(UsageError, match="no such file"):
        extract(str(tmp_path / "missing"), str(dest))
    assert os.listdir(dest) == ["keep"]  # what the box holds already


def test_a_truncated_gzip_tarball_is_one_clear_error(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, _ = box
    whole = tmp_path / "t.tgz"
    with tarfile.open(whole, "w:gz") as tar:
        data = os.urandom(200_000)
        info = tarfile.TarInfo("big")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole.read_bytes()[:60_000])
    with pytest.raises(UsageError, match="truncated"):
        extract(str(cut), str(dest))


def test_caps_on_size_members_depth_and_name_length(tmp_path: Path, box: tuple[Path, Path]) -> None:
    """A bomb (small compressed, big unpacked), too many members, too deep a path, too long a name:
    each refused with its reason, before the data is written."""
    dest, _ = box
    bomb = tmp_path / "bomb.tgz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UsageError, match="max_unpacked_size"):
        extract(str(bomb), str(dest), Limits(max_size=8 << 20))
    many = make_tar(tmp_path / "many.tar", [("f", f"f{i}", "", b"") for i in range(20)])
    with pytest.raises(UsageError, match="max_tar_members"):
        extract(str(many), str(dest), Limits(max_members=10))
    deep = make_tar(tmp_path / "deep.tar", [("f", "/".join(["d"] * 40) + "/f", "", b"")])
    with pytest.raises(UsageError, match="max_tar_depth"):
        extract(str(deep), str(dest), Limits(max_depth=32))
    long = make_tar(tmp_path / "long.tar", [("f", "a" * 300, "", b"")])
    with pytest.raises(UsageError, match="longer than 255 bytes"):
        extract(str(long), str(dest))
    assert os.listdir(dest) == ["keep"]  # what the box holds already


def test_extract_tar_step(tmp_path: Path, box: tuple[Path, Path]) -> None:
    dest, _ = box
    step = ExtractTar(str(make_tar(tmp_path / "t.tar", [("f", "a", "", b"x")])), str(dest))
    assert ExtractTar("/var/cache/base 1.txz", "/r/m").render() == ["tar -x -p -f '/var/cache/base 1.txz' -C /r/m"]
    assert step.inverse() == []
    assert Step.from_json(step.to_json()) == step
    step.apply(Context(SubprocessRunner()))
    assert (dest / "a").read_bytes() == b"x"


# No member can make extraction write outside the destination -----------------------------------

DEPTH = 8  # dest sits this deep in the sandbox, deeper than any name climbs
parts = st.lists(st.sampled_from(["a", "b", "a", "b", "..", ".", ""]), min_size=1, max_size=DEPTH - 2)
members = st.lists(
    st.tuples(st.sampled_from("fdlh"), parts, st.booleans(), parts, st.booleans()), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members)
def test_no_member_writes_outside_the_destination(spec: list[tuple[str, list[str], bool, list[str], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp) / "sandbox"
        dest = sandbox.joinpath(*(f"o{i}" for i in range(DEPTH)), "dest")
        dest.mkdir(parents=True)
        (sandbox / "o0" / "decoy").write_text("decoy")
        # Absolute names and targets point into the sandbox, so a bug writes there, never on the host.
        absolute = str(sandbox)
        tar_members: list[Member] = [
            (kind, (absolute + "/" if name_abs else "") + "/".join(name),
             (absolute + "/" if link_abs else "") + "/".join(link), b"data")
            for kind, name, name_abs, link, link_abs in spec]
        archive = make_tar(Path(tmp) / "t.tar", tar_members)
        before = listing(sandbox)
        try:
            extract(str(archive), str(dest))
        except UsageError:
            assert listing(sandbox) == before
        after = {k: v for k, v in listing(sandbox).items() if not k.startswith(os.path.relpath(dest, sandbox) + "/")}
        assert after == before


# Image layers: whiteouts and opaque directories --------------------------------------------------

LAYER: list[Member] = [
    ("f", "opt/old/new", "", b"new\n"),  # before its directory's opaque marker: the marker still applies first
    ("f", "opt/old/.wh..wh..opq", "", b""),
    ("f", "etc/.wh.gone", "", b""),
    ("f", "etc/.wh.again", "", b""),
    ("f", "etc/again", "", b"this layer's own\n"),  # a whiteout never hides its own layer's file
]


def _lower(root: Path) -> None:
    for name, body in (("opt/old/a", b"a"), ("opt/old/sub/b", b"b"), ("etc/gone", b"x"), ("etc/again", b"old"),
                       ("etc/kept", b"k")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)


def test_a_full_layer_deletes_what_its_whiteouts_hide(tmp_path: Path) -> None:
    from ladle.storage.tarsafe import extract_layer
    dest = tmp_path / "tree"
    _lower(dest)
    extract_layer(str(make_tar(tmp_path / "l.tar", LAYER)), str(dest), Limits(), "full")
    assert sorted(listing(dest)) == ["etc", "etc/again", "etc/kept", "opt", "opt/old", "opt/old/new"]
    assert (dest / "etc/again").read_bytes() == b"this layer's own\n"


def test_an_overlay_layer_writes_overlayfs_whiteouts_and_opaque_marks(tmp_path: Path) -> None:
    from ladle.storage.tarsafe import extract_layer
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _lower(lower)
    os.chmod(lower / "etc", 0o750)
    upper.mkdir()
    extract_layer(str(make_tar(tmp_path / "l.tar", LAYER)), str(upper), Limits(), "overlay", (str(lower),))
    gone = os.lstat(upper / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert (upper / "etc/again").read_bytes() == b"this layer's own\n"
    assert os.getxattr(upper / "opt/old", "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE(os.lstat(upper / "etc").st_mode) == 0o750  # a parent not in the layer: as the lower shows it


@pytest.mark.parametrize("name", [".wh.", "etc/.wh..wh.x", "../.wh.x"])
def test_an_invalid_whiteout_is_refused(tmp_path: Path, name: str) -> None:
    from ladle.storage.tarsafe import extract_layer
    dest = tmp_path / "tree"
    dest.mkdir()
    with pytest.raises(UsageError, match="unsafe tar member"):
        extract_layer(str(make_tar(tmp_path / "l.tar", [("f", name, "", b"")])), str(dest), Limits(), "full")
    assert listing(dest) == {}
