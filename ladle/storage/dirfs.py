"""The zero-set-up backend: plain directories, with overlayfs on Linux for layered pots.

Each layer lives in ``<root>/storage/<key>/``: ``fs/`` is its tree (for an overlay layer, the
upper directory), ``work/`` is overlayfs's work directory, and ``snaps/<name>/`` holds snapshots
as full copies of ``fs/``. Snapshots and clones therefore cost a copy (``cp -a``, which reflinks
where the file system can), unlike ZFS; a clone is an independent copy, so ``promote`` has
nothing to do. Overlay layers need Linux; on other hosts use full layers (``copy``). On FreeBSD
a tree's file flags are cleared before it is removed (`ClearFlags`).

An overlay layer's lower directories are always snapshot copies, never a live ``fs/``: overlayfs
documents changing a lower layer under a mounted overlay as undefined. A snapshot of an overlay
layer is a copy of its upper directory, so layers stack: a pot of level 2 prepared from
``pots/web@S`` (itself on ``bases/b@B``) mounts ``lowerdir=pots/web/snaps/S:bases/b/snaps/B``
under its own upper. Later changes to ``pots/web`` do not reach it; ``pots/web@S`` cannot be
removed or rolled past while it exists. A view is the same stack without an upper, mounted
read-only (a bind mount when the snapshot is of a full layer); it has no tree of its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ladle.errors import StateError, UsageError
from ladle.plan.steps import Command, Commit, Context, CopyTree, MakeDir, RemoveTree, Rename, Step
from ladle.state.steps import put
from ladle.storage.snapshotter import Mount, Snapshotter, split_ref

if TYPE_CHECKING:
    from ladle.state.store import Store


@dataclass
class ClearFlags(Command):
    """`chflags -R -x noschg PATH`, before removing a tree on FreeBSD: base.txz marks files
    system-immutable (libc.so.7, ld-elf.so.1, /var/empty, ...), which not even root may remove.
    Under -R no symbolic link is followed (-P is the default) and -x stays on the tree's own
    file system. A tree already gone is fine (a removal finished after a crash)."""

    path: str

    def argvs(self) -> list[list[str]]:
        return [["chflags", "-R", "-x", "noschg", self.path]]

    def apply(self, ctx: Context) -> None:
        if os.path.lexists(self.path):
            super().apply(ctx)


CATEGORIES = ("bases", "pots", "fscomps", "layers")


class DirSnapshotter(Snapshotter):
    name = "dir"

    def __init__(self, root: str, store: Store, host: str = "linux") -> None:
        super().__init__(root, store)
        self.host = host

    def _remove_tree(self, path: str) -> list[Step]:
        return [*([ClearFlags(path)] if self.host == "freebsd" else []), RemoveTree(path)]

    def _dir(self, key: str) -> str:
        return os.path.join(self.root, "storage", key)

    def _snapdir(self, ref: str) -> str:
        key, snap = split_ref(ref)
        if snap is None:
            raise UsageError(f"{ref!r} is not a snapshot reference")
        return os.path.join(self._dir(key), "snaps", snap)

    def init_steps(self, offline: bool = False, force: bool = False) -> list[Step]:
        """Create the storage tree on `ladle init` (idempotent: only what is missing)."""
        base = os.path.join(self.root, "storage")
        paths = [base] + [os.path.join(base, k) for k in CATEGORIES]
        return [MakeDir(p) for p in paths if offline or not os.path.isdir(p)]

    # Queries -----------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return os.path.join(self._dir(key), "fs")

    def mounts(self, key: str, readonly: bool = False) -> list[Mount]:
        layer = self._layer(key)
        if layer["kind"] == "active" and layer["layout"] == "full":
            return [Mount("bind", self.path(key), "/", ("ro",) if readonly else ())]
        parent = layer["parent"] or ""
        if "@" not in parent:  # ladle 0.2 made level 2 on a live tree
            raise StateError(f"storage layer {key} is layered on the live tree of {parent}: "
                             "create it again (level 2 now starts from a snapshot)")
        lowers = self._lowers(parent)
        if layer["kind"] == "view":
            if len(lowers) == 1:
                return [Mount("bind", lowers[0], "/", ("ro",))]
            return [Mount("overlay", "overlay", "/", ("lowerdir=" + ":".join(lowers), "ro"))]
        if readonly:
            return [Mount("overlay", "overlay", "/", ("lowerdir=" + ":".join([self.path(key), *lowers]), "ro"))]
        work = os.path.join(self._dir(key), "work")
        opts = ("lowerdir=" + ":".join(lowers), f"upperdir={self.path(key)}", f"workdir={work}")
        return [Mount("overlay", "overlay", "/", opts)]

    def whole_tree(self, ref: str) -> str | None:
        """A full layer's snapshot is a copy of its whole tree."""
        key = split_ref(self.committed(ref))[0]
        return self._snapdir(ref) if self._layer(key)["layout"] == "full" else None

    def lowers(self, parent: str) -> list[str]:
        """The directories a layer prepared on `parent` has under it, top first."""
        return self._lowers(self.committed(parent))

    def _lowers(self, parent: str) -> list[str]:
        """Directories under an overlay layer, top first: its parent snapshot's, then the
        snapshots that one's layer stacks on."""
        layer = self._layer(split_ref(parent)[0])
        top = self._snapdir(parent)
        if layer["layout"] == "full":
            return [top]
        return [top, *self._lowers(layer["parent"] or "")]

    def orphans(self) -> list[str]:
        found = []
        for category in CATEGORIES:
            top = os.path.join(self.root, "storage", category)
            for entry in sorted(os.listdir(top)) if os.path.isdir(top) else []:
                if not self.exists(f"{category}/{entry}"):
                    found.append(f"{category}/{entry}")
        return found

    # Changes -----------------------------------------------------------------------------------

    def remove_orphan(self, key: str) -> list[Step]:
        return self._remove_tree(self._dir(key))

    def _category(self, key: str) -> list[Step]:
        """The category's directory, for a root made before it existed (image layers)."""
        top = os.path.dirname(self._dir(key))
        return [MakeDir(top)] if key.startswith("layers/") and not os.path.isdir(top) else []

    def new(self, key: str) -> list[Step]:
        d = self._dir(key)
        return [*self._category(key), MakeDir(d), MakeDir(os.path.join(d, "fs")), MakeDir(os.path.join(d, "snaps")),
                self._record(key, "active", "full", None, None)]

    def prepare(self, key: str, parent: str) -> list[Step]:
        self.committed(parent)
        d = self._dir(key)
        return [*self._category(key), MakeDir(d), *(MakeDir(os.path.join(d, sub)) for sub in ("fs", "work", "snaps")),
                self._record(key, "active", "overlay", parent, None)]

    def view(self, key: str, parent: str) -> list[Step]:
        """Nothing to make but the layer's directory: its mounts are the snapshot's, read-only."""
        layout = self._layer(split_ref(self.committed(parent))[0])["layout"]
        return [MakeDir(self._dir(key)), self._record(key, "view", layout, parent, None)]

    def copy(self, key: str, source: str) -> list[Step]:
        layer = self._layer(split_ref(self.committed(source))[0])
        d = self._dir(key)
        steps: list[Step] = [MakeDir(d), CopyTree(self._snapdir(source), os.path.join(d, "fs")),
                             MakeDir(os.path.join(d, "snaps"))]
        if layer["layout"] == "overlay":
            steps.append(MakeDir(os.path.join(d, "work")))
        return [*steps, self._record(key, "active", layer["layout"], layer["parent"], None)]

    def clone(self, key: str, source: str) -> list[Step]:
        """A copy: directories cannot share blocks, and a copy leaves nothing to promote."""
        return self.copy(key, source)

    def snapshot(self, key: str, snap: str) -> list[Step]:
        # No check that the layer exists: a plan may snapshot a layer it creates (create-base).
        self._writable(key)
        if snap in self.snapshots(key):
            raise UsageError(f"snapshot {key}@{snap} already exists")
        row = {"key": key, "name": snap, "created": time.time()}
        return [CopyTree(self.path(key), self._snapdir(f"{key}@{snap}")),
                put("snapshots", {"key": key, "name": snap}, row, None)]

    def commit(self, key: str, snap: str) -> list[Step]:
        """The tree is moved into the snapshot, not copied: an image layer is stored once."""
        self._writable(key)
        row = {"key": key, "name": snap, "created": time.time()}
        return [Rename(self.path(key), self._snapdir(f"{key}@{snap}")),
                put("snapshots", {"key": key, "name": snap}, row, None)]

    def rollback(self, key: str, snap: str) -> list[Step]:
        """Set the tree aside, copy the snapshot in, then (past the Commit) drop the old tree and
        the later snapshots: a crash at any point leaves one whole version, never none."""
        later = self.removable(key, snap, later=True)
        old = self.path(key) + ".rollback"
        steps: list[Step] = [RemoveTree(old),  # one a crash left half-removed after its Commit
                             Rename(self.path(key), old), CopyTree(self._snapdir(f"{key}@{snap}"), self.path(key)),
                             Commit(f"{key} rolled back to {snap}")]
        for s in later:
            steps += self._forget_snapshot(key, s)
        return [*steps, *self._remove_tree(old)]

    def remove_snapshot(self, key: str, snap: str) -> list[Step]:
        self.removable(key, snap)
        return self._forget_snapshot(key, snap)

    def _forget_snapshot(self, key: str, snap: str) -> list[Step]:
        row = self.store.get("snapshots", key=key, name=snap)
        return [put("snapshots", {"key": key, "name": snap}, None, row),
                *self._remove_tree(self._snapdir(f"{key}@{snap}"))]

    def promote(self, key: str) -> list[Step]:
        self._layer(key)
        return []

    def rename(self, key: str, new_key: str) -> list[Step]:
        layer = self._layer(key)
        if self.exists(new_key) or os.path.lexists(self._dir(new_key)):
            raise UsageError(f"storage layer {new_key} already exists")
        steps: list[Step] = [Rename(self._dir(key), self._dir(new_key)),
                             put("layers", {"key": key}, None, layer),
                             put("layers", {"key": new_key}, {**layer, "key": new_key}, None)]
        for row in self.store.all("snapshots", key=key):
            steps += [put("snapshots", {"key": key, "name": row["name"]}, None, row),
                      put("snapshots", {"key": new_key, "name": row["name"]}, {**row, "key": new_key}, None)]
        for dep in self.dependants(key):
            drow = self.store.get("layers", key=dep) or {}
            parent = drow["parent"]
            if parent and split_ref(parent)[0] == key:
                new_parent = new_key + parent[len(key):]
                steps.append(put("layers", {"key": dep}, {**drow, "parent": new_parent}, drow))
        return steps

    def remove(self, key: str) -> list[Step]:
        layer = self._layer(key)
        steps: list[Step] = [put("snapshots", {"key": key, "name": r["name"]}, None, r)
                             for r in self.store.all("snapshots", key=key)]
        return [*steps, put("layers", {"key": key}, None, layer), *self._remove_tree(self._dir(key))]
