"""Storage backends behind one snapshotter interface (DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ladle.errors import UsageError

if TYPE_CHECKING:
    from ladle.plan.runner import Runner
    from ladle.state.store import Store
    from ladle.storage.snapshotter import Snapshotter

BACKENDS = ("dir", "zfs")


def open_backend(kind: str, root: str, store: Store, dataset: str | None, runner: Runner | None = None,
                 host: str = "linux", offline: bool = False) -> Snapshotter:
    """The snapshotter for `kind` on `host`; imported lazily so the CLI only pays for the one it uses."""
    if kind == "dir":
        from ladle.storage.dirfs import DirSnapshotter
        return DirSnapshotter(root, store, host)
    if kind == "zfs":
        from ladle.storage.zfs import ZfsSnapshotter
        if not dataset:
            raise UsageError("zfs storage needs a dataset (ladle init --storage zfs --dataset POOL/PATH)")
        return ZfsSnapshotter(root, store, dataset, runner, offline)
    raise UsageError(f"unknown storage backend {kind!r} (choose from {', '.join(BACKENDS)})")
