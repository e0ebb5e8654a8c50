"""`ladle commit`, and a stopped pot's changes as image layers, for it and for each layer step of
`ladle build`.

On dir storage on Linux a pot is an overlayfs upper over its image's (or base's) layers, and the
upper is the change. Elsewhere its tree is whole (a ZFS clone of its parent snapshot, a copy on
FreeBSD's dir storage) and the change is its difference from the parent's tree
(`ladle.images.treediff`); on ZFS, where the pot is a clone of that very snapshot, unchanged files
are told by their object number and ctime without reading them.

The parent's tree is read where the snapshotter keeps it whole (dir: a full layer's snapshot
copy), or else (ZFS) through a temporary read-only clone of the snapshot, layer `views/<hex>`,
mounted under the state root and destroyed after, failure or not. zfs-fuse has neither
`.zfs/snapshot` nor `zfs diff`, and a clone is the same on native ZFS. A crash leaves the view's
row and dataset behind: the `view-<hex>` lock, held while it is read, tells a live view from a
leftover, and `ladle gc` or the next commit or build removes leftovers (`sweep`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ladle.engine import imagepots, images
from ladle.engine.core import Engine
from ladle.errors import Busy, HostError, UsageError
from ladle.state import locks

if TYPE_CHECKING:
    from ladle.images.blobs import BlobStore
    from ladle.images.commit import Layer

VIEWS = "views"  # the storage category of the temporary clones


def commit(eng: Engine, name: str, text: str) -> str:
    """`ladle commit -p POT REF`: the stopped pot's changes as a new layer on its image (or on its
    base's tree, as a first layer), stored as image REF, ready for `push`. The pot is made from
    an image or is a multi level 1 pot on a base; its changes are read as `changes` says (an
    overlay upper, or a diff against its parent's tree). A commit that fails removes the blobs
    it stored that no image uses."""
    import json
    import time

    from ladle.engine import runs
    from ladle.errors import StateError
    from ladle.images import commit as mk
    from ladle.images import index, refs
    if eng.dry_run:
        raise UsageError("commit has no dry run")
    ref = refs.parse(text)
    blobs = images._blobs(eng)
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        if runs.is_running(eng, name):
            raise StateError(f"pot {name} is running: stop it first (its tree must not change while it is read)")
        with blobs.lock(shared=True, timeout=locks.default_timeout()) as held:
            image = None
            if pot["image"]:
                rows = [r for r in index.rows(eng.store) if r["manifest"] == pot["image"]["manifest"]]
                if not rows or not blobs.has(rows[0]["manifest"]):
                    raise UsageError(f"the image of pot {name} ({pot['image']['ref']}) is no longer in the store:"
                                     " pull it again")
                image = rows[0]
                manifest = index.manifest_of(blobs, image)
                parent = json.loads(blobs.read(manifest.config.digest, images.MAX_CONFIG))
                parent_layers = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                                 for d in manifest.layers]
            else:
                eng.base(pot["base"])  # still there: its tree is the first layer
                os_name, arch = images.platform()
                parent = {"architecture": arch, "os": os_name,
                          "config": {"Cmd": ["/bin/sh", "-c", pot["cmd"]]},
                          "rootfs": {"type": "layers", "diff_ids": []}}
                parent_layers = []
            conf = dict(parent.get("config") or {})
            if pot["env"]:
                conf = {k: v for k, v in conf.items() if k.lower() != "env"}
                conf["Env"] = [f"{k}={v}" for k, v in pot["env"].items()]
            parent = {**parent, "config": conf}
            added: list[str] = []
            try:
                made = layers(eng, blobs, pot, image, added)
                digest, size, created = mk.image(blobs, parent, parent_layers, made, f"ladle commit -p {name}",
                                                 added)
                index.record(eng.store, ref, digest, digest, mk.OCI_MANIFEST, size, created, time.time())
            except BaseException:
                if added and held.upgrade():
                    index.forget(eng.store, blobs, added)
                raise
    return f"committed pot {name} as {ref} ({digest})"


def layers(eng: Engine, blobs: BlobStore, pot: dict[str, Any], image: dict[str, Any] | None,
           added: list[str] | None) -> list[Layer]:
    """The layers a commit of the stopped `pot` adds to its image (`image`, its index row) or,
    for a pot on a base, to nothing: the base's tree first, then the pot's changes. New blobs
    are appended to `added`."""
    from ladle.images import commit as mk
    from ladle.images import treediff
    layer = eng.snap.info(pot["layer"])
    base = layer.parent if (layer.parent or "").startswith("bases/") else None
    if image is None and base is None:
        raise UsageError(f"pot {pot['name']} is neither made from an image nor a multi level 1 pot on a base:"
                         " there is no parent tree to take its changes from")
    if layer.layout == "overlay":
        first = [] if image else [mk.store_layer(blobs, eng.snap.lowers(base)[0],  # type: ignore[attr-defined]
                                                 overlay=False, added=added)]
        return [*first, mk.store_layer(blobs, eng.snap.path(pot["layer"]), overlay=True, added=added)]
    parent = _image_top(eng, blobs, image) if image else str(base)
    clone = eng.snap.name == "zfs" and layer.origin == parent
    bounds = treediff.Bounds(eng.cfg.max_unpacked_size, eng.cfg.max_tar_members, eng.cfg.max_tar_depth)
    top = eng.snap.path(pot["layer"])
    with parent_tree(eng, parent) as tree:
        first = [] if image else [mk.store_layer(blobs, tree, overlay=False, added=added)]
        diff = mk.store_tar(blobs, lambda out: treediff.write_diff(tree, top, out, clone=clone, bounds=bounds,
                                                                   skip=frozenset(mk.LADLE_FILES)), added)
    return [*first, diff]


def _image_top(eng: Engine, blobs: BlobStore, image: dict[str, Any]) -> str:
    """The snapshot of the image's top layer, unpacked again if a prune took it (a pot copied
    from it, as on FreeBSD's dir storage, does not keep it)."""
    from ladle.storage.layers import SNAP, chain_ids, key_of
    manifest, cfg = images.image_config(blobs, image)
    ref = f"{key_of(chain_ids(list(cfg.diff_ids))[-1])}@{SNAP}"
    return ref if eng.snap.exists(ref) else imagepots.unpack(eng, blobs, manifest, cfg)


@contextmanager
def parent_tree(eng: Engine, ref: str) -> Iterator[str]:
    """A host path showing the whole tree of committed snapshot `ref`, for as long as this lasts."""
    path = eng.snap.whole_tree(ref)
    if path is not None:
        yield path
        return
    if eng.snap.name != "zfs":
        raise UsageError(f"{ref} is not a whole tree on {eng.snap.name} storage: its pot's changes cannot be read")
    sweep(eng)
    name = os.urandom(6).hex()
    key = f"{VIEWS}/{name}"
    with eng.lock(f"view-{name}"):
        eng.execute("view", f"view:{name}", eng.snap.view(key, ref))
        try:
            (mount,) = eng.snap.mounts(key)
            if not os.path.ismount(mount.source):  # an empty directory would read as "all deleted"
                raise HostError(f"the view {key} of {ref} is not mounted at {mount.source}")
            yield mount.source
        finally:
            eng.execute("unview", f"view:{name}", eng.snap.remove(key), on_crash="finish")


def sweep(eng: Engine) -> list[str]:
    """Remove the views a crashed commit or build left (no one holds their lock)."""
    out = []
    for key in eng.snap.keys(VIEWS):
        name = key.split("/", 1)[1]
        try:
            with locks.hold(eng.root, f"view-{name}", timeout=0):
                if eng.snap.exists(key):
                    eng.execute("gc", f"view:{name}", eng.snap.remove(key), on_crash="finish")
                    out.append(f"removed the view {key} a crashed commit left")
        except Busy:
            continue
    return out
