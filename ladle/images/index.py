"""The image index in the state store: which names and tags point at which manifests, and so
which blobs of the content store something still references."""

from __future__ import annotations

import json
from typing import Any

from ladle.errors import HostError, NotFound
from ladle.images.blobs import BlobStore
from ladle.images.media import MAX_MANIFEST, Manifest, parse
from ladle.images.refs import DIGEST, Ref
from ladle.images.refs import parse as parse_ref
from ladle.state.store import Store

MAX_CONFIG = 16 << 20


def rows(store: Store) -> list[dict[str, Any]]:
    return store.all("images", order="name, tag, digest")


def find(store: Store, text: str) -> list[dict[str, Any]]:
    """The rows a REF names: NAME[:TAG], NAME@DIGEST, or a bare DIGEST (of an index or a manifest)."""
    if DIGEST.fullmatch(text):
        found = [r for r in rows(store) if text in (r["digest"], r["manifest"])]
    else:
        ref = parse_ref(text)
        if ref.digest:
            found = [r for r in store.all("images", name=ref.name) if ref.digest in (r["digest"], r["manifest"])]
        else:
            found = store.all("images", name=ref.name, tag=ref.tag)
    if not found:
        raise NotFound(f"image {text} is not in the store (see 'ladle images')")
    return found


def record(store: Store, ref: Ref, digest: str, manifest: str, media_type: str, size: int,
           created: str | None, now: float) -> None:
    """Point `ref` at an image: a tag moves to it; a digest reference is added beside the others."""
    with store.transaction():
        tag = ref.tag if not ref.digest else ""
        store.delete("images", name=ref.name, tag=tag, digest=digest)
        if tag:
            store.delete("images", name=ref.name, tag=tag)
        store.insert("images", {"name": ref.name, "tag": tag, "digest": digest, "manifest": manifest,
                                "media_type": media_type, "size": size, "created": created, "pulled": now})


def manifest_of(blobs: BlobStore, row: dict[str, Any]) -> Manifest:
    m = parse(blobs.read(row["manifest"], MAX_MANIFEST), row["media_type"], row["manifest"])
    assert isinstance(m, Manifest)
    return m


def referenced(store: Store, blobs: BlobStore) -> set[str]:
    """Every blob some image needs: its index, its manifest, its config and layers."""
    out: set[str] = set()
    for row in rows(store):
        out |= {row["digest"], row["manifest"]}
        if blobs.has(row["manifest"]):
            out |= {d.digest for d in manifest_of(blobs, row).blobs}
    return out


def created_of(config: bytes) -> str | None:
    """The config's `created` time, if it is a JSON object that has a string one."""
    try:
        doc = json.loads(config)
    except (ValueError, UnicodeDecodeError):
        return None
    value = doc.get("created") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value.isprintable() and len(value) < 64 else None


def forget(store: Store, blobs: BlobStore, added: list[str]) -> None:
    """Remove what a failed pull or load brought, unless an image uses it (it may be a shared layer)."""
    try:
        keep = referenced(store, blobs)
    except HostError:
        return  # a damaged store: 'ladle image prune' sorts it out
    for dg in added:
        if dg not in keep:
            blobs.remove(dg)
