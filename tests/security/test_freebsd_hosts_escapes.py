"""Escape probes for the /etc/hosts (and resolv.conf) a FreeBSD pot gets from ladle while it
runs: the pot plants a link to a host file, a FIFO, an /etc that leads out of its root, or swaps
/etc for a link between the resolution and the write, as a hostile root in it would. The write
must never follow a link out of the pot, never block, never write through what it finds. It is
done with system calls from the host (no pot binary runs), so these probes run for real here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ladle.errors import HostError
from ladle.hosts.base import NetSpec
from ladle.hosts.freebsd.net import JailWriteFile
from ladle.hosts.freebsd.plans import hosts_plan
from ladle.plan.steps import Context
from ladle.storage.snapshotter import Mount
from tests.recording_runner import RecordingRunner
from tests.test_freebsd_driver import make_spec


def write_hosts(tree: Path, text: str = "10.192.0.5 web\n") -> None:
    [step] = hosts_plan(make_spec("web", root=[Mount("bind", str(tree), "/")], network="public-bridge",
                                  net=NetSpec(type="public-bridge", hosts=text)))
    assert isinstance(step, JailWriteFile) and step.render()[1] == f"cat > {tree}/etc/hosts <<'EOF'"
    step.apply(Context(RecordingRunner()))


def test_hosts_are_a_new_file_renamed_over_the_old_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hosts").write_text("old\n")
    write_hosts(tree)
    assert (tree / "etc" / "hosts").read_text() == "10.192.0.5 web\n"
    assert oct((tree / "etc" / "hosts").stat().st_mode & 0o7777) == "0o644"
    assert os.listdir(tree / "etc") == ["hosts"]  # no temporary file left


@pytest.mark.parametrize("plant", ["link to a host file", "fifo", "etc leads out of the pot", "etc in the pot"])
def test_hosts_are_never_written_through_what_the_pot_planted(tmp_path: Path, plant: str) -> None:
    host = tmp_path / "host-etc"
    host.mkdir()
    (host / "hosts").write_text("the host's\n")
    tree = tmp_path / "tree"
    (tree / "usr" / "local" / "etc").mkdir(parents=True)
    if plant == "etc leads out of the pot":
        os.symlink(str(host), tree / "etc")  # resolved inside the pot: there is no such directory
    elif plant == "etc in the pot":
        os.symlink("/usr/local/etc", tree / "etc")
    else:
        (tree / "etc").mkdir()
        if plant == "fifo":
            os.mkfifo(tree / "etc" / "hosts")  # opening it to write would block for ever
        else:
            os.symlink(str(host / "hosts"), tree / "etc" / "hosts")
    write_hosts(tree)
    assert (host / "hosts").read_text() == "the host's\n" and os.listdir(host) == ["hosts"]
    if plant == "etc in the pot":
        assert (tree / "usr" / "local" / "etc" / "hosts").read_text() == "10.192.0.5 web\n"
    elif plant != "etc leads out of the pot":
        assert not (tree / "etc" / "hosts").is_symlink() and (tree / "etc" / "hosts").read_text() == "10.192.0.5 web\n"


def test_a_link_swapped_in_after_the_directory_was_resolved_is_refused(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A running pot replaces /etc with a link between the resolution and the write."""
    from ladle.hosts.freebsd import net as freebsd_net
    host = tmp_path / "host-etc"
    host.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(str(host), tree / "etc")
    monkeypatch.setattr(freebsd_net, "resolve_in_root", lambda root, path: f"{root}/etc")  # as it was a moment ago
    with pytest.raises(HostError, match="/etc/hosts not written: /etc changed under it"):
        write_hosts(tree)
    assert os.listdir(host) == []


def test_a_layer_reaching_through_a_link_makes_no_flag_change_on_a_freebsd_host(tmp_path: Path) -> None:
    """FreeBSD's unpack clears schg on what a layer removes or replaces (`chflags`, as root on the
    host): a whiteout or a member below a symlink of the tree underneath (to the host's /etc) is
    refused before any chflags runs, so no flag outside the layer's tree is ever cleared."""
    import gzip
    import hashlib
    import io
    import tarfile

    from ladle.errors import UsageError
    from ladle.storage.layers import UnpackLayer
    dest = tmp_path / "layer"
    dest.mkdir()
    (dest / "etc").symlink_to("/etc")
    for hostile in ("etc/.wh.master.passwd", "etc/master.passwd"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            t.addfile(tarfile.TarInfo(hostile), io.BytesIO(b""))
        blob = tmp_path / "blob"
        blob.write_bytes(gzip.compress(buf.getvalue()))
        runner = RecordingRunner()
        step = UnpackLayer(str(blob), "application/vnd.oci.image.layer.v1.tar+gzip",
                           "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest(), str(dest), flags=True)
        with pytest.raises(UsageError, match="link"):
            step.apply(Context(runner))
        assert runner.calls == []
