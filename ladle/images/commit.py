"""`ladle commit`: a pot's changes as a new image layer, and the image that adds it.

On dir storage on Linux the changes are the pot's overlayfs upper directory: what the pot
wrote, its deletions as overlayfs whiteouts (0/0 character devices) and its emptied directories
as opaque ones (`trusted.overlay.opaque`), made image-spec's (`.wh.NAME`, `.wh..wh..opq`). Where
a pot's tree is whole (a ZFS clone, a copy on FreeBSD's dir storage) they are the difference
between its tree and its parent's (`treediff`). Either tar is compressed with gzip, stored in
the content store with a config (the parent's, with this diff_id and a history entry added) and
an OCI manifest listing the parent's layers and the new one. A pot made from a base has the
base's tree as its first layer.

The files ladle itself writes into a pot (/etc/resolv.conf, /etc/hosts) are left out, as
Docker leaves out its bind-mounted ones; sockets and device nodes other than whiteouts too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ladle.errors import HostError
from ladle.images.blobs import BlobStore

OPAQUE_XATTR = "trusted.overlay.opaque"
LADLE_FILES = {"etc/resolv.conf", "etc/hosts"}
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    digest: str  # of the gzip blob
    size: int
    diff_id: str  # of the plain tar


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _entries(top: str, overlay: bool) -> list[tuple[str, str]]:
    """(archive name, host path) of a tree, parents first, names sorted (a stable tar)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel = os.path.relpath(dirpath, top)
        for name in dirnames + sorted(filenames):
            arc = os.path.normpath(os.path.join(rel, name))
            if arc in LADLE_FILES and overlay:
                continue
            out.append((arc, os.path.join(dirpath, name)))
    return out


def write_tar(top: str, out: str, *, overlay: bool) -> None:
    """The tree at `top` as a layer tar at `out`; with `overlay`, an upper directory whose
    whiteouts and opaque directories become image-spec's."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for arc, path in _entries(top, overlay):
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and overlay:
                parent, base = os.path.split(arc)
                info = tarfile.TarInfo(os.path.join(parent, ".wh." + base))
                info.mtime = int(st.st_mtime)
                tar.addfile(info)
                continue
            if stat.S_ISSOCK(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                continue
            info = tar.gettarinfo(path, arcname=arc)
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if stat.S_ISDIR(st.st_mode) and overlay and _opaque(path):
                marker = tarfile.TarInfo(os.path.join(arc, ".wh..wh..opq"))
                marker.mtime = int(st.st_mtime)
                tar.addfile(marker)


def store_layer(blobs: BlobStore, top: str, *, overlay: bool, added: list[str] | None = None) -> Layer:
    """Tar the tree or upper directory `top` and store it as a layer (see `store_tar`)."""
    return store_tar(blobs, lambda out: write_tar(top, out, overlay=overlay), added)


def store_tar(blobs: BlobStore, write: Callable[[str], None], added: list[str] | None = None) -> Layer:
    """Write a layer tar with `write(path)`, gzip it and put it in the content store (both
    digests taken on the way); a blob that was not there yet is appended to `added`, for the
    caller to remove should what it makes fail."""
    blobs.ensure()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.dirname(blobs.dir)), prefix="commit-") as tmp:
        raw, packed = os.path.join(tmp, "layer.tar"), os.path.join(tmp, "layer.tar.gz")
        write(raw)
        plain, comp = hashlib.sha256(), hashlib.sha256()
        with open(raw, "rb") as src, open(packed, "wb") as dst, gzip.GzipFile(fileobj=dst, mode="wb", mtime=0) as z:
            while chunk := src.read(_CHUNK):
                plain.update(chunk)
                z.write(chunk)
        size = os.path.getsize(packed)
        digest = "sha256:" + _file_sha(packed, comp)
        if not blobs.has(digest, size):
            with open(packed, "rb") as f, blobs.writer(digest, size, "ladle commit") as w:
                while chunk := f.read(_CHUNK):
                    w.write(chunk)
            if added is not None:
                added.append(digest)
    return Layer(digest, size, "sha256:" + plain.hexdigest())


def _file_sha(path: str, h: Any) -> str:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return str(h.hexdigest())


def _put_json(blobs: BlobStore, doc: dict[str, Any], added: list[str] | None) -> tuple[str, int]:
    body = json.dumps(doc, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if not blobs.has(digest, len(body)):
        blobs.put(body, digest, "ladle commit")
        if added is not None:
            added.append(digest)
    return digest, len(body)


def image(blobs: BlobStore, parent_config: dict[str, Any], parent_layers: list[dict[str, Any]], layers: list[Layer],
          comment: str, added: list[str] | None = None) -> tuple[str, int, str]:
    """Store the config and OCI manifest of the parent's image plus `layers`; the manifest's
    digest and size, and the config's `created` (new blobs appended to `added`)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config = dict(parent_config)
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(x.diff_id for x in layers)]
    config["rootfs"] = rootfs
    config["created"] = created
    config["history"] = [*(config.get("history") or []),
                         *({"created": created, "created_by": comment} for _ in layers)]
    cdigest, csize = _put_json(blobs, config, added)
    descs = [*parent_layers, *({"mediaType": GZIP_LAYER, "digest": x.digest, "size": x.size} for x in layers)]
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cdigest, "size": csize}, "layers": descs}
    mdigest, msize = _put_json(blobs, manifest, added)
    if not blobs.has(mdigest):
        raise HostError(f"manifest {mdigest} was not stored")
    return mdigest, msize + csize + sum(d["size"] for d in descs), created
