"""The snapshotter interface, after containerd's: layers by key, committed snapshots, mounts as data.

Vocabulary, used everywhere:
- a *key* names a layer: ``bases/<b>``, ``pots/<p>``, ``fscomps/<f>``;
- a *snapshot ref* names a committed, read-only state of a layer: ``<key>@<snap>``;
- a layer is ``full`` (a whole tree of its own) or ``overlay`` (a writable upper over its *parent*);
- a *parent* is a snapshot ref, or a bare key meaning "that layer, live and read-only" (pot level 2);
- an *origin* is a snapshot ref the layer was cloned from and depends on until promoted (ZFS).

Every method that changes something returns a list of plan steps instead of doing it, so the same
call serves a real run, ``--dry-run`` and the FreeBSD rendering; layer and snapshot rows are
written by those steps too (``ladle.state.steps``), so undo covers them.

Life of a pot, as the engine uses it::

    new("bases/busybox")                        # empty full layer; fill it at path(...)
    snapshot("bases/busybox", "1700000000")     # commit it
    prepare("pots/web", "bases/busybox@1700000000")   # level 1: writable layer on the base
    mounts("pots/web")                          # -> [Mount(...)] performed by the host driver
    snapshot("pots/web", "1700000100"); rollback("pots/web", "1700000100")
    clone("pots/web2", "pots/web@1700000100")   # cheap copy (ZFS clone: origin dependency)
    promote("pots/web2")                        # reverse that dependency (ZFS)
    remove("pots/web2"); remove("pots/web")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
        """How to mount the layer as a whole tree at target '/'."""
        raise NotImplementedError

    def snapshots(self, key: str) -> list[str]:
        """Snapshot names of a layer, oldest first."""
        return [r["name"] for r in self.store.all("snapshots", order="created, name", key=key)]

    def latest(self, key: str) -> str | None:
        snaps = self.snapshots(key)
        return snaps[-1] if snaps else None

    def dependants(self, key: str) -> list[str]:
        """Keys of layers whose parent or origin is this layer or one of its snapshots."""
        at = key + "@"
        rows = self.store.db.execute(
            "SELECT key FROM layers WHERE parent=? OR substr(parent, 1, ?)=? OR substr(origin, 1, ?)=? ORDER BY key",
            (key, len(at), at, len(at), at)).fetchall()
        return [r[0] for r in rows]

    def users(self, ref: str) -> list[str]:
        """Keys of layers whose parent or origin is exactly the snapshot `ref`."""
        rows = self.store.db.execute("SELECT key FROM layers WHERE parent=? OR origin=? ORDER BY key", (ref, ref))
        return [r[0] for r in rows]

    def removable(self, key: str, snap: str, later: bool = False) -> list[str]:
        """Check that `snap` exists; return it (or, with `later`, the snapshots after it, which a
        rollback destroys) after refusing if another layer was made from any of them."""
        from ladle.errors import NotFound, UsageError

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

    def remove_orphan(self, key: str) -> list[Step]:
        """Remove a layer that `orphans` found; there are no rows to forget."""
        raise NotImplementedError

    def init_steps(self) -> list[Step]:
        """What `ladle init` creates for this backend; only what is missing (idempotent)."""
        raise NotImplementedError

    def new(self, key: str) -> list[Step]:
        """An empty full writable layer."""
        raise NotImplementedError

    def prepare(self, key: str, parent: str) -> list[Step]:
        """A writable layer whose content starts as `parent` (a snapshot ref, or a live key)."""
        raise NotImplementedError

    def copy(self, key: str, source: str) -> list[Step]:
        """A new layer with the content of snapshot `source`, not depending on the source layer."""
        raise NotImplementedError

    def clone(self, key: str, source: str) -> list[Step]:
        """A new layer with the content of snapshot `source`, as cheaply as the backend can."""
        raise NotImplementedError

    def snapshot(self, key: str, snap: str) -> list[Step]:
        raise NotImplementedError

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
