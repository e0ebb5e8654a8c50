"""One behavioural contract, every storage backend: what the engine may rely on whichever it gets."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ladle.errors import LadleError, NotFound, UsageError
from ladle.plan.executor import Executor
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Context, Step
from ladle.state.store import Store
from ladle.storage import open_backend
from ladle.storage.snapshotter import Mount, Snapshotter
from tests.zfs_pool import ladle_zfs


@dataclass
class Backend:
    snap: Snapshotter
    store: Store

    def do(self, steps: list[Step]) -> None:
        Executor(Context(SubprocessRunner(), self.store)).run("test", "storage", steps)

    def write(self, key: str, text: str, name: str = "f") -> None:
        with open(os.path.join(self.snap.path(key), name), "w") as f:
            f.write(text)

    def read(self, key: str, name: str = "f") -> str:
        with open(os.path.join(self.snap.path(key), name)) as f:
            return f.read()

    def init(self) -> Backend:
        self.do(self.snap.init_steps())
        return self


@pytest.fixture(params=["dir", "zfs"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "zfs":
        with ladle_zfs(request.getfixturevalue("zfs_pool")) as (dataset, root, store):
            yield Backend(open_backend("zfs", root, store, dataset), store).init()
        return
    root = tempfile.mkdtemp(prefix="ladle-dir-")
    store = Store(os.path.join(root, "ladle.db"))
    try:
        yield Backend(open_backend("dir", root, store, None), store).init()
    finally:
        store.close()
        shutil.rmtree(root)


@contextlib.contextmanager
def mounted(mounts: list[Mount]) -> Iterator[str]:
    """Perform a layer's mounts (one whole tree at '/') on a scratch directory, as a host driver
    does; unmounted afterwards."""
    (m,) = mounts
    target = tempfile.mkdtemp(prefix="ladle-mnt-")
    try:
        how = ["--bind"] if m.type == "bind" else ["-t", m.type]
        subprocess.run(["mount", *how, *(["-o", ",".join(m.options)] if m.options else []), m.source, target],
                       check=True, capture_output=True)
        try:
            yield target
        finally:
            subprocess.run(["umount", target], check=True)
    finally:
        os.rmdir(target)


def text(tree: str, name: str = "f") -> str | None:
    """The content of file `name` in `tree`, or None if it is not there."""
    path = Path(tree, name)
    return path.read_text() if path.exists() else None


def layer(b: Backend, key: str, *snaps: str) -> None:
    """A new layer whose file 'f' holds each snapshot's name when it is taken."""
    b.do(b.snap.new(key))
    for s in snaps:
        b.write(key, s)
        b.do(b.snap.snapshot(key, s))


def test_rollback_restores_a_snapshot(backend: Backend) -> None:
    layer(backend, "pots/a", "1", "2")
    backend.write("pots/a", "changed")
    backend.write("pots/a", "new file", name="g")
    backend.do(backend.snap.rollback("pots/a", "1"))
    assert backend.read("pots/a") == "1"
    assert not os.path.exists(os.path.join(backend.snap.path("pots/a"), "g"))
    assert backend.snap.snapshots("pots/a") == ["1"]
    assert backend.snap.latest("pots/a") == "1"


def test_a_clone_sees_the_snapshot_and_is_independent(backend: Backend) -> None:
    layer(backend, "bases/b", "1")
    backend.write("bases/b", "after the snapshot")
    backend.do(backend.snap.clone("pots/c", "bases/b@1"))
    assert backend.read("pots/c") == "1"
    backend.write("bases/b", "later still")
    backend.write("pots/c", "the clone's own")
    assert backend.read("pots/c") == "the clone's own"
    assert backend.read("bases/b") == "later still"


def test_a_copy_sees_the_snapshot(backend: Backend) -> None:
    layer(backend, "bases/b", "1")
    backend.do(backend.snap.copy("pots/c", "bases/b@1"))
    assert backend.read("pots/c") == "1"
    assert backend.snap.dependants("bases/b") == []


def test_dependants(backend: Backend) -> None:
    layer(backend, "bases/b", "1")
    backend.do(backend.snap.prepare("pots/p", "bases/b@1"))
    backend.do(backend.snap.clone("pots/c", "bases/b@1"))
    # A ZFS clone depends on its origin; a directory clone is a copy and does not.
    expected = ["pots/c", "pots/p"] if backend.snap.name == "zfs" else ["pots/p"]
    assert backend.snap.dependants("bases/b") == expected
    assert backend.snap.dependants("pots/c") == []


def test_remove_leaves_nothing(backend: Backend) -> None:
    layer(backend, "pots/a", "1")
    path = backend.snap.path("pots/a")
    backend.do(backend.snap.remove("pots/a"))
    assert not os.path.exists(path)
    assert backend.store.all("layers") == [] and backend.store.all("snapshots") == []
    if backend.snap.name == "zfs":
        assert not any("/pots/a" in ds for ds in backend.snap.datasets())  # type: ignore[attr-defined]
    else:
        assert os.listdir(os.path.join(backend.snap.root, "storage", "pots")) == []


def test_rename_keeps_content_and_snapshots(backend: Backend) -> None:
    layer(backend, "pots/a", "1")
    backend.write("pots/a", "live")
    old = backend.snap.path("pots/a")
    backend.do(backend.snap.rename("pots/a", "pots/b"))
    assert backend.read("pots/b") == "live"
    assert not os.path.exists(old)
    assert backend.snap.snapshots("pots/b") == ["1"]
    backend.do(backend.snap.rollback("pots/b", "1"))
    assert backend.read("pots/b") == "1"


def test_mounts_describe_the_whole_tree(backend: Backend) -> None:
    layer(backend, "pots/a")
    (mount,) = backend.snap.mounts("pots/a", readonly=True)
    assert (mount.target, mount.readonly, mount.source) == ("/", True, backend.snap.path("pots/a"))


def test_a_failed_plan_leaves_nothing(backend: Backend) -> None:
    layer(backend, "bases/b", "1")
    with pytest.raises(LadleError):
        backend.do([*backend.snap.clone("pots/c", "bases/b@1"), *backend.snap.snapshot("pots/c", "1"),
                    *backend.snap.copy("pots/d", "bases/b@1"),
                    *backend.snap.new("pots/d")])
    assert [r["key"] for r in backend.store.all("layers")] == ["bases/b"]
    assert not os.path.exists(backend.snap.path("pots/c"))
    assert not os.path.exists(backend.snap.path("pots/d"))


def test_level_two_starts_from_a_snapshot_that_later_changes_do_not_reach(backend: Backend) -> None:
    layer(backend, "bases/b")
    backend.write("bases/b", "base", name="gone")
    backend.write("bases/b", "base", name="kept")
    backend.do(backend.snap.snapshot("bases/b", "1"))
    backend.do(backend.snap.prepare("pots/l1", "bases/b@1"))
    backend.do(backend.snap.snapshot("pots/l1", "r"))
    with mounted(backend.snap.mounts("pots/l1")) as tree:  # through the mount, so overlayfs records the removal
        Path(tree, "f").write_text("l1 at s")
        Path(tree, "gone").unlink()
    backend.do(backend.snap.snapshot("pots/l1", "s"))
    backend.do(backend.snap.prepare("pots/l2", "pots/l1@s"))
    with mounted(backend.snap.mounts("pots/l1")) as tree:
        Path(tree, "f").write_text("l1 later")
        Path(tree, "g").write_text("new in l1")
    with mounted(backend.snap.mounts("pots/l2")) as tree:
        assert [text(tree, name) for name in ("f", "g", "gone", "kept")] == ["l1 at s", None, None, "base"]
        Path(tree, "f").write_text("l2's own")
    with mounted(backend.snap.mounts("pots/l1")) as tree:
        assert text(tree) == "l1 later"
    assert backend.snap.dependants("pots/l1") == ["pots/l2"]
    with pytest.raises(UsageError, match="snapshot pots/l1@s is used by pots/l2: it cannot be removed"):
        backend.snap.remove_snapshot("pots/l1", "s")
    with pytest.raises(UsageError, match="pots/l1@s is used by pots/l2: rolling back to r would destroy it"):
        backend.snap.rollback("pots/l1", "r")


def test_only_a_committed_snapshot_is_a_parent(backend: Backend) -> None:
    snap = backend.snap
    layer(backend, "bases/b", "1")
    for make in (snap.prepare, snap.view, snap.copy, snap.clone):
        with pytest.raises(UsageError, match=r"^bases/b is an active layer, not a committed snapshot: snapshot it"):
            make("pots/x", "bases/b")
        with pytest.raises(NotFound, match=r"^snapshot bases/b@2 does not exist$"):
            make("pots/x", "bases/b@2")
        with pytest.raises(NotFound, match=r"^storage layer bases/nope does not exist$"):
            make("pots/x", "bases/nope@1")
    backend.do(snap.view("pots/v", "bases/b@1"))
    with pytest.raises(UsageError, match=r"^pots/v is a view, not a committed snapshot: use bases/b@1$"):
        snap.prepare("pots/x", "pots/v")
    backend.do(snap.prepare("pots/x", "bases/b@1"))
    kinds = [snap.info(name).kind for name in ("bases/b", "bases/b@1", "pots/v", "pots/x")]
    assert kinds == ["active", "committed", "view", "active"]
    assert (snap.info("pots/x").parent, snap.info("pots/v").parent) == ("bases/b@1", "bases/b@1")
    assert [snap.exists(name) for name in ("pots/x", "bases/b@1", "pots/y", "bases/b@2")] == [True, True, False, False]
    with pytest.raises(NotFound, match=r"^snapshot bases/b@2 does not exist$"):
        snap.info("bases/b@2")


def test_a_view_is_a_read_only_mount_of_a_committed_snapshot(backend: Backend) -> None:
    snap = backend.snap
    layer(backend, "bases/b", "1")
    backend.do(snap.prepare("pots/p", "bases/b@1"))
    backend.write("pots/p", "p at s")
    backend.do(snap.snapshot("pots/p", "s"))
    backend.write("pots/p", "p later")
    # A snapshot of a full layer, and one of a layered one (an overlay stack on dir).
    for key, ref, want in (("pots/vb", "bases/b@1", "1"), ("pots/vp", "pots/p@s", "p at s")):
        backend.do(snap.view(key, ref))
        mounts = snap.mounts(key)
        assert all(m.readonly for m in mounts)
        with mounted(mounts) as tree:
            assert text(tree) == want
            with pytest.raises(OSError) as refused:
                Path(tree, "f").write_text("no")
            assert refused.value.errno == errno.EROFS
    with pytest.raises(UsageError, match="snapshot pots/p@s is used by pots/vp: it cannot be removed"):
        snap.remove_snapshot("pots/p", "s")
    with pytest.raises(UsageError, match=r"^pots/vp is a read-only view of pots/p@s$"):
        snap.snapshot("pots/vp", "x")
    backend.do([*snap.remove("pots/vp"), *snap.remove("pots/vb")])
    backend.do(snap.remove_snapshot("pots/p", "s"))  # no longer in use
    assert [r["key"] for r in backend.store.all("layers", order="key")] == ["bases/b", "pots/p"]
