"""The image verbs on this host: the state root's content store and image index. Pulls and
pushes hold the store's lock shared, rmi and prune alone, so a prune never removes what a pull is
bringing in and two pulls never wait for each other."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ladle.errors import LadleError, UsageError
from ladle.hosts import this_host
from ladle.state.locks import default_timeout

if TYPE_CHECKING:
    from ladle._models import Image
    from ladle.engine.core import Engine
    from ladle.images.blobs import BlobStore
    from ladle.images.config import ImageConfig
    from ladle.images.media import Manifest

# uname's machine -> the OCI (GOARCH) architecture
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386", "i686": "386",
         "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}


def _blobs(eng: Engine) -> BlobStore:
    from ladle.images.blobs import BlobStore
    eng.store  # noqa: B018  (ladle must be initialised: the index is in its database)
    return BlobStore(eng.root)


def platform() -> tuple[str, str]:
    """This host's os/architecture as image indexes name them (a FreeBSD host: freebsd/amd64)."""
    machine = os.uname().machine
    return this_host(), _ARCH.get(machine, machine)


def pull(eng: Engine, text: str, insecure: bool, progress: Callable[[str, int, int], None] | None) -> str:
    from ladle.images import refs, transfer
    if eng.dry_run:
        raise UsageError("pull has no dry run")
    ref = refs.parse(text)
    blobs = _blobs(eng)
    os_name, arch = platform()
    row = transfer.pull(eng.store, blobs, ref, transfer.Platform(os_name, arch), insecure=insecure,
                        progress=progress, lock_timeout=default_timeout())
    return f"pulled {ref} ({row['manifest']})"


def push(eng: Engine, source: str, dest: str | None, insecure: bool, chunk: int,
         progress: Callable[[str, int, int], None] | None) -> str:
    from ladle.images import refs, transfer
    if eng.dry_run:
        raise UsageError("push has no dry run")
    target = refs.parse(source if dest is None else dest)
    blobs = _blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        digest = transfer.push(eng.store, blobs, _one(eng, source), target, insecure=insecure, chunk=chunk,
                               progress=progress)
    return f"pushed {target} ({digest})"


def tag(eng: Engine, source: str, dest: str) -> str:
    """A new name for an image of the store: DEST's tag moves to SOURCE's image (the blobs stay)."""
    from ladle.images import index, refs
    if eng.dry_run:
        raise UsageError("tag has no dry run")
    target = refs.parse(dest)
    blobs = _blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        row = _one(eng, source)
        if target.digest and target.digest not in (row["digest"], row["manifest"]):
            raise UsageError(f"{dest}: image {source} has manifest {row['manifest']}, not {target.digest}")
        index.record(eng.store, target, row["digest"], row["manifest"], row["media_type"], row["size"],
                     row["created"], row["pulled"])
    return f"tagged {source} as {target}"


def _one(eng: Engine, text: str) -> dict[str, Any]:
    """The one image a REF names (a bare name with several digests is ambiguous)."""
    from ladle.images import index
    found = index.find(eng.store, text)
    if len({r["manifest"] for r in found}) > 1:
        raise UsageError(f"{text} names more than one image: give NAME:TAG or NAME@DIGEST")
    return found[0]


def save(eng: Engine, text: str, path: str) -> str:
    from ladle.images import archive
    if eng.dry_run:
        raise UsageError("save has no dry run")
    blobs = _blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        row = _one(eng, text)
        size = archive.save(blobs, row, path)
    return f"saved {text} ({row['manifest']}) to {path} ({size} bytes)"


def load(eng: Engine, path: str) -> str:
    """Load an OCI layout archive; a load that fails removes what it brought (as a failed pull)."""
    from ladle.images import archive, index
    if eng.dry_run:
        raise UsageError("load has no dry run")
    blobs = _blobs(eng)
    os_name, arch = platform()
    with blobs.lock(shared=True, timeout=default_timeout()) as held:
        added: list[str] = []
        try:
            loaded = archive.load(eng.store, blobs, path, os_name, arch, added)
        except BaseException:
            if held.upgrade():
                index.forget(eng.store, blobs, added)
            raise
        unused = set(added) - index.referenced(eng.store, blobs)
        if unused and held.upgrade():  # blobs the archive had that no image it named uses
            for digest in unused:
                blobs.remove(digest)
    return "loaded " + ", ".join(loaded)


def login(registry: str, user: str, password: str, insecure: bool) -> str:
    """Check the credentials against the registry (host[:port], checked), then keep them."""
    from ladle.images import auth
    from ladle.images.registry import opened
    with opened(registry, insecure=insecure, creds=(user, password)) as reg:
        reg.login()
    return f"logged in to {registry} (credentials in {auth.store(registry, user, password)})"


def images(eng: Engine) -> list[Image]:
    from ladle._models import Image
    from ladle.images import index
    from ladle.images.containerfile import CACHE
    rows = [r for r in index.rows(eng.store) if r["name"] != CACHE]  # build's steps: `rmi` them by name
    return [Image(name=r["name"], tag=r["tag"], digest=r["digest"], manifest=r["manifest"], size=r["size"],
                  created=r["created"]) for r in rows]


def rmi(eng: Engine, text: str, force: bool = False) -> str:
    """As Docker's and Podman's rmi: the last name of an image that pots were made from goes only
    with `force` (the pots keep their layer snapshots and run on; commit needs the image back)."""
    from ladle.images import index
    if eng.dry_run:
        raise UsageError("rmi has no dry run")
    blobs = _blobs(eng)
    with blobs.lock(shared=False, timeout=default_timeout()):
        found = index.find(eng.store, text)
        if not force:
            _not_in_use(eng, text, found)
        with eng.store.transaction():
            for r in found:
                eng.store.delete("images", name=r["name"], tag=r["tag"], digest=r["digest"])
        removed, layers = _prune(eng, blobs)
    names = ", ".join(f"{r['name']}:{r['tag']}" if r["tag"] else f"{r['name']}@{r['digest']}" for r in found)
    return f"removed {names} ({removed} blobs freed{_layers(layers)})"


def _not_in_use(eng: Engine, text: str, found: list[dict[str, Any]]) -> None:
    import json

    from ladle.errors import StateError
    gone = {r["manifest"] for r in found}
    named = {(r["name"], r["tag"], r["digest"]) for r in found}
    kept = {r["manifest"] for r in eng.store.all("images") if (r["name"], r["tag"], r["digest"]) not in named}
    users = sorted(p["name"] for p in eng.store.all("pots")
                   if p["image"] and json.loads(p["image"]).get("manifest") in gone - kept)
    if users:
        raise StateError(f"image {text} is used by pot{'s' if len(users) > 1 else ''} {', '.join(users)}:"
                         " destroy them first, or rmi -f (they keep their layers)")


def _layers(count: int) -> str:
    return f", {count} layer snapshot{'s' if count != 1 else ''} removed" if count else ""


def prune(eng: Engine, build_cache: bool = False) -> str:
    """Remove what nothing references; with `build_cache` first forget the image of every build
    step (`ladle.build/cache`: Docker's `builder prune`), unless a build is running (its next
    steps may stand on them), so that what only the cache kept goes too. Built images keep
    their own names and so everything they use."""
    from ladle.engine import buildwork
    from ladle.images.containerfile import CACHE
    if eng.dry_run:
        raise UsageError("image prune has no dry run")
    blobs = _blobs(eng)
    note = ""
    with blobs.lock(shared=False, timeout=default_timeout()):
        if build_cache and buildwork.live(eng):
            note = "; kept the build cache: a build is running"
        elif build_cache:
            steps = eng.store.db.execute("DELETE FROM images WHERE name=?", (CACHE,)).rowcount
            note = f", forgot {steps} build step{'s' if steps != 1 else ''}"
        removed, layers = _prune(eng, blobs)
    return f"removed {removed} blobs nothing references{_layers(layers)}{note}"


def _prune(eng: Engine, blobs: BlobStore) -> tuple[int, int]:
    """Remove the blobs no image references, and what crashed pulls left half-written; then the
    layer snapshots that no image has and no pot is made on."""
    from ladle.images import index
    keep = index.referenced(eng.store, blobs)
    gone = [d for d in blobs.digests() if d not in keep]
    for d in gone:
        blobs.remove(d)
    leftovers(eng, blobs)
    return len(gone), prune_layers(eng, blobs)


def leftovers(eng: Engine, blobs: BlobStore) -> int:
    """Remove what crashed writers left (the caller holds the store alone): half-written blobs of
    processes that are gone, and the temporary directories of layers being stored (`commit-*`,
    which live only while their writer holds the store shared). How many went."""
    from ladle.plan.rmtree import remove_tree
    paths = blobs.partials_of_the_dead()
    top = os.path.join(eng.root, "images")
    paths += [os.path.join(top, n) for n in os.listdir(top) if n.startswith("commit-")] if os.path.isdir(top) else []
    for path in paths:
        remove_tree(path)
    return len(paths)


MAX_CONFIG = 16 << 20


def image_config(blobs: BlobStore, row: dict[str, Any]) -> tuple[Manifest, ImageConfig]:
    from ladle.images import config, index
    manifest = index.manifest_of(blobs, row)
    cfg = config.parse(blobs.read(manifest.config.digest, MAX_CONFIG), row["manifest"])
    if len(cfg.diff_ids) != len(manifest.layers):
        raise UsageError(f"image {row['name']}: its config lists {len(cfg.diff_ids)} diff_ids for"
                         f" {len(manifest.layers)} layers")
    return manifest, cfg


def remove_layers(eng: Engine, keys: list[str]) -> int:
    """Remove these layers (top first) that nothing is layered on; how many went."""
    gone = 0
    for key in keys:
        with eng.lock("layer-" + key.split("/")[1]):
            if eng.snap.exists(key) and not eng.snap.dependants(key):
                eng.execute("prune", "layer:" + key.split("/")[1], eng.snap.remove(key), on_crash="finish")
                gone += 1
    return gone


def prune_layers(eng: Engine, blobs: BlobStore) -> int:
    """Remove the layer snapshots no image in the index has and no pot is made on (the caller
    holds the content store alone); a layer under a kept one is kept."""
    from ladle.images import index
    from ladle.storage.layers import chain_ids, key_of
    keep: set[str] = set()
    for row in index.rows(eng.store):
        try:
            _, cfg = image_config(blobs, row)
        except LadleError:
            continue
        keep |= {key_of(c) for c in chain_ids(list(cfg.diff_ids))}
    total = 0
    while True:
        layers = [r["key"] for r in eng.store.all("layers", order="key") if r["key"].startswith("layers/")]
        gone = remove_layers(eng, [k for k in layers if k not in keep])
        total += gone
        if not gone:
            return total
