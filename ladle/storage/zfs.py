"""ZFS storage: a layer is a dataset, a snapshot a ZFS snapshot, a clone a ZFS clone (as Jetpack).

Layout: layer key ``K`` is dataset ``<dataset>/K``, mounted at ``<root>/zfs/K`` because every
dataset inherits its mountpoint from ``<dataset>`` (``mountpoint=<root>/zfs``); snapshot ref
``K@S`` is ``<dataset>/K@S``. All layers are ``full``: a clone is a whole tree that shares blocks,
and a view is a clone with ``readonly=on``.

The same commands must drive Debian's zfs-fuse (pool version 23) and native OpenZFS on FreeBSD and
Linux, so only their common subset is used: no ``zfs list -p``, no ``create -u``, no lz4, no
bookmarks. Two zfs-fuse quirks are handled where they bite: a destroy is retried while it says
"dataset is busy" (``run_zfs``), and a rename unmounts first (``ZfsSnapshotter.rename``).

The state store is the source of truth for layers and snapshots; ``zfs`` is queried only where
the store cannot know (``init_steps``, ``datasets``, ``owned``), and then once for the whole tree.

A dataset belongs to one state root: ``init`` sets the user property ``ladle:root`` to the root's
path, and refuses a dataset whose property names another root (``init --force`` takes it over
deliberately). Everything below the dataset inherits the property, so a dataset inside another
root's tree is refused too. Before a plan destroys anything (``remove``, ``rollback``, a snapshot,
gc's orphans), the property is checked once per command: a root whose dataset was taken over
destroys nothing of the new owner's.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ladle.errors import CommandFailed, Exists, NotFound, StateError, UsageError
from ladle.plan.runner import Runner, SubprocessRunner
from ladle.plan.steps import Command, Commit, Context, Step
from ladle.state.steps import put
from ladle.storage.snapshotter import Mount, Snapshotter, split_ref

if TYPE_CHECKING:
    from ladle.state.store import Store

CATEGORIES = ("bases", "pots", "fscomps", "layers", "views")
OWNER = "ladle:root"  # user property: the state root that owns the dataset


# Steps -----------------------------------------------------------------------------------------

BUSY_WAIT = 10.0  # seconds to keep retrying a zfs command that reports "dataset is busy"


def run_zfs(runner: Runner, argv: list[str]) -> str:
    """Run a zfs command; on failure report zfs's first line ("cannot ...: why"), not its last.

    zfs-fuse releases a dataset asynchronously after unmounting it, so `zfs destroy` of a mounted
    file system there always fails once with "dataset is busy" (it has unmounted it by then), and
    often again right after. No event tells when the release is done, so the command is retried,
    with a short growing delay, for at most BUSY_WAIT seconds; OpenZFS succeeds the first time.
    """
    deadline = time.monotonic() + BUSY_WAIT
    delay = 0.01
    while True:
        try:
            return runner.run(argv)
        except CommandFailed as e:
            if "dataset is busy" not in e.stderr or time.monotonic() > deadline:
                _reword(e)
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _reword(e: CommandFailed) -> None:
    lines = e.stderr.strip().splitlines()
    if lines:
        e.args = (f"{shlex.join(e.argv[:2])} failed: {lines[0]}",)


def _opts(props: dict[str, str]) -> list[str]:
    return [a for k, v in props.items() for a in ("-o", f"{k}={v}")]


def _need_snapshot(name: str) -> None:
    if "@" not in name:
        raise ValueError(f"{name!r} is not a snapshot name")


class ZfsCommand(Command):
    """Base of the ZFS steps: runs its commands with zfs's own error line."""

    def apply(self, ctx: Context) -> None:
        for argv in self.argvs():
            run_zfs(ctx.runner, argv)


@dataclass
class ZfsCreate(ZfsCommand):
    dataset: str
    props: dict[str, str] = field(default_factory=dict)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "create", *_opts(self.props), self.dataset]]

    def inverse(self) -> list[Step]:
        return [ZfsDestroy(self.dataset, recursive=True)]


@dataclass
class ZfsDestroy(ZfsCommand):
    """Destroy a file system (with its snapshots when `recursive`); it cannot be undone."""

    dataset: str
    recursive: bool = False

    def __post_init__(self) -> None:
        if "@" in self.dataset:
            raise ValueError(f"{self.dataset!r} is a snapshot: use ZfsDestroySnapshot")

    def argvs(self) -> list[list[str]]:
        return [["zfs", "destroy", *(["-r"] if self.recursive else []), self.dataset]]


@dataclass
class ZfsSnapshot(ZfsCommand):
    snap: str

    def __post_init__(self) -> None:
        _need_snapshot(self.snap)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "snapshot", self.snap]]

    def inverse(self) -> list[Step]:
        return [ZfsDestroySnapshot(self.snap)]


@dataclass
class ZfsDestroySnapshot(ZfsCommand):
    """Destroy one snapshot; refuses anything without '@' so it can never take a file system."""

    snap: str

    def __post_init__(self) -> None:
        _need_snapshot(self.snap)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "destroy", self.snap]]


@dataclass
class ZfsClone(ZfsCommand):
    origin_snap: str
    dataset: str
    props: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _need_snapshot(self.origin_snap)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "clone", *_opts(self.props), self.origin_snap, self.dataset]]

    def inverse(self) -> list[Step]:
        return [ZfsDestroy(self.dataset, recursive=True)]


@dataclass
class ZfsRollback(ZfsCommand):
    """`zfs rollback -r`: later snapshots are destroyed, so there is no undo; plans put it last."""

    snap: str

    def __post_init__(self) -> None:
        _need_snapshot(self.snap)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "rollback", "-r", self.snap]]


@dataclass
class ZfsPromote(ZfsCommand):
    """Promote a clone; undone by promoting its old origin file system back."""

    dataset: str
    origin_dataset: str = ""

    def argvs(self) -> list[list[str]]:
        return [["zfs", "promote", self.dataset]]

    def apply(self, ctx: Context) -> None:
        # A clone no longer is one once promoted: so a promote repeated or undone after a crash
        # that interrupted it is done already.
        _run_tolerating(ctx, self.argvs()[0], "not a cloned filesystem")

    def inverse(self) -> list[Step]:
        return [ZfsPromote(self.origin_dataset, self.dataset)] if self.origin_dataset else []


def _run_tolerating(ctx: Context, argv: list[str], done: str) -> None:
    """Run a command whose failure saying `done` means its goal already holds."""
    try:
        run_zfs(ctx.runner, argv)
    except CommandFailed as e:
        if done not in e.stderr:
            raise


@dataclass
class ZfsMount(ZfsCommand):
    """Mount a file system; one already mounted is fine."""

    dataset: str

    def argvs(self) -> list[list[str]]:
        return [["zfs", "mount", self.dataset]]

    def apply(self, ctx: Context) -> None:
        _run_tolerating(ctx, self.argvs()[0], "already mounted")

    def inverse(self) -> list[Step]:
        return [ZfsUnmount(self.dataset)]


@dataclass
class ZfsUnmount(ZfsCommand):
    """Unmount a file system; one not mounted is fine."""

    dataset: str

    def argvs(self) -> list[list[str]]:
        return [["zfs", "unmount", self.dataset]]

    def apply(self, ctx: Context) -> None:
        _run_tolerating(ctx, self.argvs()[0], "not currently mounted")

    def inverse(self) -> list[Step]:
        return [ZfsMount(self.dataset)]


@dataclass
class ZfsRename(ZfsCommand):
    """Rename a file system; plans unmount it first (see ZfsSnapshotter.rename)."""

    old: str
    new: str

    def argvs(self) -> list[list[str]]:
        return [["zfs", "rename", self.old, self.new]]

    def apply(self, ctx: Context) -> None:
        try:
            run_zfs(ctx.runner, self.argvs()[0])
        except CommandFailed as e:  # renamed already, by the command a crash interrupted?
            if "does not exist" not in e.stderr or not zfs_list(ctx.runner, self.new, []):
                raise

    def inverse(self) -> list[Step]:
        return [ZfsRename(self.new, self.old)]


@dataclass
class ZfsSendReceive(ZfsCommand):
    """`zfs send SNAP | zfs receive DATASET`: a full, independent copy (it keeps SNAP's name)."""

    snap: str
    dataset: str

    def __post_init__(self) -> None:
        _need_snapshot(self.snap)

    def argvs(self) -> list[list[str]]:
        return [["zfs", "send", self.snap], ["zfs", "receive", self.dataset]]

    def render(self) -> list[str]:
        return [" | ".join(shlex.join(a) for a in self.argvs())]

    def apply(self, ctx: Context) -> None:
        try:
            ctx.runner.pipeline(self.argvs())
        except CommandFailed as e:
            _reword(e)
            raise

    def inverse(self) -> list[Step]:
        return [ZfsDestroy(self.dataset, recursive=True)]


@dataclass
class ZfsSet(ZfsCommand):
    """Set a property; `old` None means it was inherited, so undo is `zfs inherit`."""

    dataset: str
    prop: str
    value: str
    old: str | None = None

    def argvs(self) -> list[list[str]]:
        return [["zfs", "set", f"{self.prop}={self.value}", self.dataset]]

    def inverse(self) -> list[Step]:
        if self.old is None:
            return [ZfsInherit(self.dataset, self.prop)]
        return [ZfsSet(self.dataset, self.prop, self.old, self.value)]


@dataclass
class ZfsInherit(ZfsCommand):
    dataset: str
    prop: str

    def argvs(self) -> list[list[str]]:
        return [["zfs", "inherit", self.prop, self.dataset]]


# The snapshotter -------------------------------------------------------------------------------

def zfs_list(runner: Runner, dataset: str, props: list[str],
             types: str = "filesystem") -> dict[str, list[str]]:
    """`zfs list -H -o name,PROPS -r -t TYPES DATASET` as {name: [values]}; {} if it does not exist.

    '-' (no value) becomes ''. One command for the whole tree, whatever its size.
    """
    argv = ["zfs", "list", "-H", "-o", ",".join(["name", *props]), "-r", "-t", types, dataset]
    try:
        out = runner.run(argv)
    except CommandFailed as e:
        if "does not exist" in e.stderr:
            return {}
        _reword(e)
        raise
    rows = [line.split("\t") for line in out.splitlines() if line]
    return {r[0]: ["" if v == "-" else v for v in r[1:]] for r in rows}


def _check_key(key: str) -> str:
    parts = key.split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") or "@" in p for p in parts):
        raise UsageError(f"invalid storage layer key {key!r}")
    return key


def _refs(row: dict[str, Any], parent: str | None, origin: str | None) -> dict[str, Any]:
    return {**row, "parent": parent, "origin": origin}


class ZfsSnapshotter(Snapshotter):
    """The ZFS backend. `runner` answers the few queries (a recording one for FreeBSD tests)."""

    name = "zfs"

    def __init__(self, root: str, store: Store, dataset: str, runner: Runner | None = None,
                 offline: bool = False) -> None:
        super().__init__(root, store)
        dataset = dataset.strip("/")
        if not dataset or "@" in dataset or any(p in ("", ".", "..") for p in dataset.split("/")):
            raise UsageError(f"invalid ZFS dataset {dataset!r}")
        self.dataset = dataset
        self.runner = runner or SubprocessRunner()
        self.offline = offline  # a dry run for another host: no zfs to ask
        self._checked = False

    # Names -------------------------------------------------------------------------------------

    def ds(self, key: str) -> str:
        """The dataset of layer `key`."""
        return f"{self.dataset}/{key}"

    def zref(self, ref: str) -> str:
        """The ZFS snapshot name of snapshot ref `key@snap`."""
        return f"{self.dataset}/{ref}"

    # Queries -----------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return os.path.join(self.root, "zfs", key)

    def mounts(self, key: str, readonly: bool = False) -> list[Mount]:
        readonly = readonly or self._layer(key)["kind"] == "view"
        return [Mount("bind", self.path(key), "/", ("ro",) if readonly else ())]

    def datasets(self) -> dict[str, str]:
        """Every file system and snapshot under the root dataset, with its origin ('' if none)."""
        rows = zfs_list(self.runner, self.dataset, ["origin"], "filesystem,snapshot")
        return {name: values[0] for name, values in rows.items()}

    def owned(self) -> None:
        """Refuse, before a plan destroys anything, if another state root now owns the dataset
        (its `ladle:root`); one query per command. A dataset from before the property is ours."""
        if self._checked or self.offline:
            return
        owner = self._owner(self.dataset)
        if owner not in (None, "", self.root):
            raise StateError(f"dataset {self.dataset} now belongs to the ladle state root {owner} "
                             f"({OWNER}): this root destroys nothing in it")
        self._checked = True

    def _owner(self, dataset: str) -> str | None:
        """The `ladle:root` of a dataset ('' if unset), None if it does not exist."""
        try:
            out = self.runner.run(["zfs", "get", "-H", "-o", "value", OWNER, dataset]).strip()
        except CommandFailed as e:
            if "does not exist" in e.stderr:
                return None
            _reword(e)
            raise
        return "" if out == "-" else out

    def orphans(self) -> list[str]:
        self.owned()
        prefix = self.dataset + "/"
        keys = [name[len(prefix):] for name in self.datasets() if name.startswith(prefix) and "@" not in name]
        return sorted(k for k in keys if k.count("/") == 1 and k.split("/")[0] in CATEGORIES
                      and not self.exists(k))

    def remove_orphan(self, key: str) -> list[Step]:
        self.owned()
        return [ZfsDestroy(self.ds(key), recursive=True)]

    def init_steps(self, offline: bool = False, force: bool = False) -> list[Step]:
        """Create `<dataset>` (mounted at `<root>/zfs`, atime off, owned by this root) and its
        children; only what is missing. A dataset another root owns is refused unless `force`:
        taking it would move that root's mountpoints here."""
        have = {} if offline else zfs_list(self.runner, self.dataset, ["mountpoint", OWNER])
        top = os.path.join(self.root, "zfs")
        steps: list[Step] = []
        if self.dataset not in have:
            parent = self.dataset.rpartition("/")[0]
            owner = None if offline else self._owner(parent)
            if owner and owner != self.root:
                raise StateError(f"dataset {parent} belongs to the ladle state root {owner} ({OWNER}): "
                                 f"{self.dataset} cannot be created inside it")
            steps.append(ZfsCreate(self.dataset, {"mountpoint": top, "atime": "off", OWNER: self.root}))
        else:
            mountpoint, owner = have[self.dataset]
            if owner not in ("", self.root) and not force:
                raise StateError(f"dataset {self.dataset} belongs to the ladle state root {owner} ({OWNER}): "
                                 "choose another dataset, or take it over with 'ladle init --force'")
            if owner != self.root:
                steps.append(ZfsSet(self.dataset, OWNER, self.root, owner or None))
            if mountpoint != top:
                steps.append(ZfsSet(self.dataset, "mountpoint", top, mountpoint))
        steps += [ZfsCreate(self.ds(c)) for c in CATEGORIES if self.ds(c) not in have]
        return steps

    def _absent(self, key: str) -> None:
        _check_key(key)
        if self.exists(key):
            raise Exists(f"storage layer {key} already exists")

    def _referrers(self, key: str) -> list[dict[str, Any]]:
        """Layer rows whose parent or origin names `key` or one of its snapshots."""
        return [r for r in self.store.all("layers", order="key")
                if key in (split_ref(r["parent"] or "")[0], split_ref(r["origin"] or "")[0])]

    # Changes -----------------------------------------------------------------------------------

    def _snap_row(self, key: str, snap: str) -> Step:
        row = {"key": key, "name": snap, "created": time.time()}
        return put("snapshots", {"key": key, "name": snap}, row, None)

    def _forget_snap(self, key: str, snap: str) -> Step:
        row = self.store.get("snapshots", key=key, name=snap)
        return put("snapshots", {"key": key, "name": snap}, None, row)

    def _category(self, key: str) -> list[Step]:
        """The category's dataset, for a root made before it existed (image layers, views)."""
        top = self.ds(key.rsplit("/", 1)[0])
        if not key.startswith(("layers/", "views/")) or self.offline or zfs_list(self.runner, top, ["origin"]):
            return []
        return [ZfsCreate(top)]

    def new(self, key: str) -> list[Step]:
        self._absent(key)
        return [*self._category(key), ZfsCreate(self.ds(key)), self._record(key, "active", "full", None, None)]

    def prepare(self, key: str, parent: str) -> list[Step]:
        """A clone of snapshot `parent`, recorded as both its parent and its origin.

        Every layer here is a whole tree (overlayfs refuses a zfs-fuse upper directory, "upper fs
        missing required features", and FreeBSD has no overlayfs), so a pot of level 2 is a
        clone of its level-1 pot's snapshot, as a pot of level 1 is of its base's.
        """
        self._absent(key)
        ref = self.committed(parent)
        return [ZfsClone(self.zref(ref), self.ds(key)), self._record(key, "active", "full", ref, ref)]

    def view(self, key: str, parent: str) -> list[Step]:
        """A clone with `readonly=on` (as containerd's ZFS snapshotter makes a view): zfs-fuse can
        mount neither a snapshot nor its `.zfs/snapshot` directory, and a clone costs nothing."""
        self._absent(key)
        ref = self.committed(parent)
        return [*self._category(key), ZfsClone(self.zref(ref), self.ds(key), {"readonly": "on"}),
                self._record(key, "view", "full", ref, ref)]

    def clone(self, key: str, source: str) -> list[Step]:
        """`zfs clone`: O(1), and the new layer depends on `source` until promoted."""
        return self.prepare(key, source)

    def copy(self, key: str, source: str) -> list[Step]:
        """`zfs send | zfs receive`: a full copy with no origin, as pot's single-type `create -P`.

        The received dataset keeps a snapshot named like the source one; it is recorded as the
        layer's first snapshot, since it costs nothing and is a rollback point to its start.
        """
        self._absent(key)
        ref = self.committed(source)
        snap = split_ref(ref)[1] or ""
        return [ZfsSendReceive(self.zref(ref), self.ds(key)), self._record(key, "active", "full", None, None),
                self._snap_row(key, snap)]

    def snapshot(self, key: str, snap: str) -> list[Step]:
        # No check that the layer exists: a plan may snapshot a layer it creates (create-base).
        self._writable(key)
        if not snap or any(c in snap for c in "@/ \t\n"):
            raise UsageError(f"invalid snapshot name {snap!r}")
        if snap in self.snapshots(key):
            raise Exists(f"snapshot {key}@{snap} already exists")
        return [ZfsSnapshot(self.zref(f"{key}@{snap}")), self._snap_row(key, snap)]

    def rollback(self, key: str, snap: str) -> list[Step]:
        """`zfs rollback -r`, refused if a later snapshot (destroyed by it) is another layer's origin."""
        later = self.removable(key, snap, later=True)
        self.owned()
        return [*(self._forget_snap(key, s) for s in later), Commit(f"{key} rolled back to {snap}"),
                ZfsRollback(self.zref(f"{key}@{snap}"))]

    def remove_snapshot(self, key: str, snap: str) -> list[Step]:
        self.removable(key, snap)
        self.owned()
        return [self._forget_snap(key, snap), ZfsDestroySnapshot(self.zref(f"{key}@{snap}"))]

    def promote(self, key: str) -> list[Step]:
        """`zfs promote`, with the rows moved the way ZFS moves them.

        The origin layer's snapshots up to and including the origin snapshot become the clone's;
        the clone takes over the origin layer's own parent and origin, and the origin layer
        becomes a clone of the clone's copy of that snapshot. Clones of moved snapshots follow.
        """
        self._writable(key)
        layer = self._layer(key)
        if not layer["origin"]:
            raise UsageError(f"storage layer {key} is not a clone; there is nothing to promote")
        okey, osnap = split_ref(layer["origin"])
        olayer = self._layer(okey)
        osnaps = self.snapshots(okey)
        if osnap not in osnaps:
            raise NotFound(f"snapshot {layer['origin']} does not exist")
        moved = osnaps[:osnaps.index(osnap) + 1]
        if clash := sorted(set(moved) & set(self.snapshots(key))):
            raise UsageError(f"cannot promote {key}: it has snapshots named like its origin's: "
                             f"{', '.join(clash)}")

        def follow(ref: str | None) -> str | None:
            k, s = split_ref(ref or "")
            return f"{key}@{s}" if k == okey and s in moved else ref

        steps: list[Step] = [ZfsPromote(self.ds(key), self.ds(okey))]
        for name in moved:
            row = self.store.get("snapshots", key=okey, name=name) or {}
            steps += [put("snapshots", {"key": okey, "name": name}, None, row),
                      put("snapshots", {"key": key, "name": name}, {**row, "key": key}, None)]
        new_rows = {key: _refs(layer, follow(olayer["parent"]), follow(olayer["origin"])),
                    okey: _refs(olayer, f"{key}@{osnap}", f"{key}@{osnap}")}
        for row in self._referrers(okey):
            new_rows.setdefault(row["key"], _refs(row, follow(row["parent"]), follow(row["origin"])))
        for k, row in new_rows.items():
            old = self._layer(k)
            if row != old:
                steps.append(put("layers", {"key": k}, row, old))
        return steps

    def rename(self, key: str, new_key: str) -> list[Step]:
        """`zfs rename`; snapshots follow, and so do the refs of layers that name this one.

        The file system is unmounted first and mounted again under its new name: zfs-fuse refuses
        to rename a mounted file system ("dataset is busy") unless it has clones, and on OpenZFS
        the explicit steps do what `zfs rename` does anyway. Both steps accept the state they aim
        for, so the plan needs no query and a layer that was not mounted ends up mounted.
        """
        layer = self._layer(key)
        self._absent(new_key)
        old_ds, new_ds = self.ds(key), self.ds(new_key)

        def follow(ref: str | None) -> str | None:
            k, s = split_ref(ref or "")
            return (new_key if s is None else f"{new_key}@{s}") if k == key else ref

        steps: list[Step] = [ZfsUnmount(old_ds), ZfsRename(old_ds, new_ds), ZfsMount(new_ds),
                             put("layers", {"key": key}, None, layer),
                             put("layers", {"key": new_key}, {**layer, "key": new_key}, None)]
        for row in self.store.all("snapshots", key=key):
            steps += [put("snapshots", {"key": key, "name": row["name"]}, None, row),
                      put("snapshots", {"key": new_key, "name": row["name"]}, {**row, "key": new_key}, None)]
        for row in self._referrers(key):
            steps.append(put("layers", {"key": row["key"]}, _refs(row, follow(row["parent"]),
                                                                  follow(row["origin"])), row))
        return steps

    def remove(self, key: str) -> list[Step]:
        """Forget the rows, then `zfs destroy -r` (last, as it cannot be undone)."""
        layer = self._layer(key)
        self.owned()
        forget: list[Step] = [self._forget_snap(key, s) for s in self.snapshots(key)]
        return [*forget, put("layers", {"key": key}, None, layer), ZfsDestroy(self.ds(key), recursive=True)]
