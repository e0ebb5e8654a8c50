"""The snapshotter interface, after containerd's: layers by key, committed snapshots, mounts as data.

Vocabulary, used everywhere:
- a *key* names a layer: ``bases/<b>``, ``pots/<p>``, ``fscomps/<f>``;
- a *snapshot ref* ``<key>@<snap>`` names a snapshot of that layer;
- every key or ref is of one *kind* (containerd's): an **active** snapshot is a writable layer (a
  pot's own tree, an fscomp, a base being filled); a **committed** snapshot is a read-only state
  of an active one, taken by ``snapshot``; a **view** is a read-only layer showing one committed
  snapshot. Only a committed snapshot can be a *parent*: ``prepare``, ``view``, ``copy`` and
  ``clone`` refuse an active key or a view, so nothing is ever layered on a tree that changes;
- a layer's *layout* is ``full`` (a whole tree of its own) or ``overlay`` (a writable upper over
  its parent's tree);
- a *parent* is the committed snapshot a layer was made from; an *origin* is the snapshot a ZFS
  clone depends on until promoted. A snapshot that is a parent or origin cannot be removed, nor
  destroyed by a rollback (``removable``).

Unlike containerd's ``Commit``, ``snapshot`` leaves the active layer in place and writable (as
``zfs snapshot`` does): a pot keeps its tree and gains rollback points.

Every method that changes something returns a list of plan steps instead of doing it, so the same
call serves a real run, ``--dry-run`` and the FreeBSD rendering; layer and snapshot rows are
written by those steps too (``ladle.state.steps``), so undo covers them. The rows are the
snapshotter's own: callers ask ``exists``, ``info``, ``snapshots`` and ``dependants``.

Life of a pot, as the engine uses it::

    new("bases/busybox")                        # active, empty, full; fill it at path(...)
    snapshot("bases/busybox", "1700000000")     # committed: bases/busybox@1700000000
    prepare("pots/web", "bases/busybox@1700000000")   # level 1: an active layer on it
    mounts("pots/web")                          # -> [Mount(...)] performed by the host driver
    snapshot("pots/web", "1700000100"); rollback("pots/web", "1700000100")
    prepare("pots/app", "pots/web@1700000100")  # level 2: on web's snapshot, never on web itself
    view("pots/look", "pots/web@1700000100")    # read-only: mounts("pots/look") are all 'ro'
    clone("pots/web2", "pots/web@1700000100")   # cheap copy (ZFS clone: origin dependency)
    promote("pots/web2")                        # reverse that dependency (ZFS)
    remove("pots/look"); remove("pots/app"); remove("pots/web"); remove("pots/web2")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ladle.errors import NotFound, UsageError
from ladle.state.steps import put

if TYPE_CHECKING:
    from ladle.plan.steps import Step
    from ladle.state.store import Store


@dataclass(frozen=True)
class Mount:
    """One mount, as data; the host driver performs it (Linux: mount(2), FreeBSD: mount_nullfs...).

    `type` is 'bind' (nullfs on FreeBSD), 'overlay' (Linux only), 'tmpfs', 'proc', 'devfs'...
    `target` is a path inside the pot ('/' for its root). `options` are mount options, e.g.
    ('ro',) or ('lowerdir=/a:/b', 'upperdir=/c', 'workdir=/d').
    """

    type: str
    source: str
    target: str
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def split_ref(ref: str) -> tuple[str, str | None]:
    """'pots/web@123' -> ('pots/web', '123'); 'pots/web' -> ('pots/web', None)."""
    key, _, snap = ref.partition("@")
    return key, snap or None


Kind = Literal["active", "committed", "view"]


@dataclass(frozen=True)
class Info:
    """What the snapshotter knows of one key or snapshot ref (containerd's Stat): enough for
    existence checks, parent resolution and telling the kinds apart. A committed snapshot has its
    layer's layout, parent and origin."""

    name: str
    kind: Kind
    layout: str
    parent: str | None
    origin: str | None


class Snapshotter:
    """Base class of the storage backends; see the module docstring for the life cycle."""

    name = ""

    def __init__(self, root: str, store: Store) -> None:
        self.root = root
        self.store = store

    # Queries -----------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        """Host path of the layer's own writable tree (for a full layer, the whole tree)."""
        raise NotImplementedError

    def mounts(self, key: str, readonly: bool = False) -> list[Mount]:
        """How to mount the layer as a whole tree at target '/' (a view's are always read-only)."""
        raise NotImplementedError

    def whole_tree(self, ref: str) -> str | None:
        """Host path of committed snapshot `ref`'s whole tree if it can be read in place, with
        nothing mounted or made; None if not (ZFS: a view is needed; an overlay layer's snapshot
        holds only its upper)."""
        return None

    def exists(self, name: str) -> bool:
        """Whether a layer (key) or a committed snapshot (ref) is known."""
        key, snap = split_ref(name)
        if snap is None:
            return self.store.get("layers", key=key) is not None
        return self.store.get("snapshots", key=key, name=snap) is not None

    def info(self, name: str) -> Info:
        """The kind, layout, parent and origin of a key or snapshot ref; NotFound if unknown."""
        key, snap = split_ref(name)
        layer = self._layer(key)
        if snap is not None and not self.exists(name):
            raise NotFound(f"snapshot {name} does not exist")
        return Info(name, "committed" if snap else layer["kind"], layer["layout"], layer["parent"],
                    layer["origin"])

    def _layer(self, key: str) -> dict[str, Any]:
        row = self.store.get("layers", key=key)
        if row is None:
            raise NotFound(f"storage layer {key} does not exist")
        return row

    def committed(self, ref: str) -> str:
        """`ref`, checked to name a committed snapshot: the one check of every parent and source."""
        key, snap = split_ref(ref)
        layer = self._layer(key)
        if snap is None:
            if layer["kind"] == "view":
                raise UsageError(f"{key} is a view, not a committed snapshot: use {layer['parent']}")
            raise UsageError(f"{key} is an active layer, not a committed snapshot: snapshot it and use {key}@SNAP")
        if snap not in self.snapshots(key):
            raise NotFound(f"snapshot {ref} does not exist")
        return ref

    def _writable(self, key: str) -> None:
        """Refuse to change a view (containerd: a view cannot be committed)."""
        row = self.store.get("layers", key=key)
        if row is not None and row["kind"] == "view":
            raise UsageError(f"{key} is a read-only view of {row['parent']}")

    def snapshots(self, key: str) -> list[str]:
        """Snapshot names of a layer, oldest first."""
        return [r["name"] for r in self.store.all("snapshots", order="created, name", key=key)]

    def latest(self, key: str) -> str | None:
        snaps = self.snapshots(key)
        return snaps[-1] if snaps else None

    def dependants(self, key: str) -> list[str]:
        """Keys of layers whose parent or origin is one of this layer's snapshots."""
        at = key + "@"
        rows = self.store.db.execute(
            "SELECT key FROM layers WHERE substr(parent, 1, ?)=? OR substr(origin, 1, ?)=? ORDER BY key",
            (len(at), at, len(at), at)).fetchall()
        return [r[0] for r in rows]

    def keys(self, category: str) -> list[str]:
        """Keys of the known layers of one category ('views' -> ['views/ab12', ...])."""
        at = category + "/"
        rows = self.store.db.execute("SELECT key FROM layers WHERE substr(key, 1, ?)=? ORDER BY key", (len(at), at))
        return [r[0] for r in rows]

    def users(self, ref: str) -> list[str]:
        """Keys of layers whose parent or origin is exactly the snapshot `ref`."""
        rows = self.store.db.execute("SELECT key FROM layers WHERE parent=? OR origin=? ORDER BY key", (ref, ref))
        return [r[0] for r in rows]

    def removable(self, key: str, snap: str, later: bool = False) -> list[str]:
        """Check that `snap` exists; return it (or, with `later`, the snapshots after it, which a
        rollback destroys) after refusing if another layer was made from any of them."""
        snaps = self.snapshots(key)
        if snap not in snaps:
            raise NotFound(f"snapshot {key}@{snap} does not exist")
        doomed = snaps[snaps.index(snap) + 1:] if later else [snap]
        for s in doomed:
            if users := self.users(f"{key}@{s}"):
                why = f"rolling back to {snap} would destroy it" if later else "it cannot be removed"
                raise UsageError(f"snapshot {key}@{s} is used by {', '.join(users)}: {why}")
        return doomed

    def orphans(self) -> list[str]:
        """Keys of layers that exist on storage but not in the state store (for `ladle gc`)."""
        raise NotImplementedError

    # Changes (each returns plan steps) ---------------------------------------------------------

    def _record(self, key: str, kind: Kind, layout: str, parent: str | None, origin: str | None) -> Step:
        row = {"key": key, "kind": kind, "layout": layout, "parent": parent, "origin": origin}
        return put("layers", {"key": key}, row, None)

    def remove_orphan(self, key: str) -> list[Step]:
        """Remove a layer that `orphans` found; there are no rows to forget."""
        raise NotImplementedError

    def init_steps(self, offline: bool = False, force: bool = False) -> list[Step]:
        """What `ladle init` creates for this backend; only what is missing (idempotent). A dry
        run for another host (`offline`) has no host to ask: it plans everything. `force` takes
        over storage that another state root owns (ZFS)."""
        raise NotImplementedError

    def new(self, key: str) -> list[Step]:
        """An empty, full, active layer."""
        raise NotImplementedError

    def prepare(self, key: str, parent: str) -> list[Step]:
        """An active layer whose content starts as the committed snapshot `parent`."""
        raise NotImplementedError

    def view(self, key: str, parent: str) -> list[Step]:
        """A read-only layer showing the committed snapshot `parent` (containerd's View), e.g. to
        read a stopped pot's snapshot; `parent` cannot be removed while the view exists."""
        raise NotImplementedError

    def copy(self, key: str, source: str) -> list[Step]:
        """A new layer with the content of snapshot `source`, not depending on the source layer."""
        raise NotImplementedError

    def clone(self, key: str, source: str) -> list[Step]:
        """A new layer with the content of snapshot `source`, as cheaply as the backend can."""
        raise NotImplementedError

    def snapshot(self, key: str, snap: str) -> list[Step]:
        """Commit the layer's current content as `key@snap`; the layer stays active."""
        raise NotImplementedError

    def commit(self, key: str, snap: str) -> list[Step]:
        """Commit a layer that will never change again (an image layer, just unpacked) as
        `key@snap` (containerd's Commit): as `snapshot`, but a backend may move the tree into
        the snapshot instead of copying it, leaving the layer no tree of its own."""
        return self.snapshot(key, snap)

    def rollback(self, key: str, snap: str) -> list[Step]:
        """Return the layer to `snap`; later snapshots are destroyed (as `zfs rollback -r`)."""
        raise NotImplementedError

    def remove_snapshot(self, key: str, snap: str) -> list[Step]:
        raise NotImplementedError

    def promote(self, key: str) -> list[Step]:
        """Make a clone independent of its origin (the origin then depends on it)."""
        raise NotImplementedError

    def rename(self, key: str, new_key: str) -> list[Step]:
        raise NotImplementedError

    def remove(self, key: str) -> list[Step]:
        """Remove the layer and its snapshots; the caller has checked dependants."""
        raise NotImplementedError
