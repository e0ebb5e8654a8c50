"""Pull and push: what moves between a registry and the content store, and in what order.

A pull fetches the config and layers first, then the manifest and index, and records the name
last, so the index never points at a blob that is not there; a pull that fails removes the blobs
it brought and nothing else references. A push sends blobs the registry lacks (mounting them from
the image's own repository when it is on the same registry), then the manifest's exact bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ladle.errors import HostError
from ladle.images import auth, index
from ladle.images.blobs import BlobStore
from ladle.images.media import MAX_MANIFEST, Descriptor, Index, Manifest, media_type, parse, select
from ladle.images.refs import Ref
from ladle.images.refs import parse as parse_ref
from ladle.images.registry import BACKOFF, RETRIES, CutShort, Registry, opened
from ladle.state.store import Store

# (what, done, total): one blob's progress, for whoever shows it
Progress = Callable[[str, int, int], None]
MAX_NESTING = 2  # an index of indexes is allowed, once
PARALLEL = 6  # blobs downloaded at once: every layer of a typical image, each hashed and synced in its own thread


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _get(reg: Registry, ref: Ref, reference: str, want: Descriptor | None) -> tuple[bytes, str, str]:
    """A manifest or index, checked: by the digest asked for, and by the registry's own header."""
    where = f"{ref.name}@{reference}" if reference.startswith("sha256:") else f"{ref.name}:{reference}"
    body, ctype, header = reg.manifest(ref.repository, reference)
    digest = _digest(body)
    expected = want.digest if want else (reference if reference.startswith("sha256:") else None)
    if expected and digest != expected:
        raise HostError(f"manifest {where} has digest {digest}: refused")
    if want and len(body) != want.size:
        raise HostError(f"manifest {where} is {len(body)} bytes, not the {want.size} its index says")
    if header and header.startswith("sha256:") and header != digest:
        raise HostError(f"manifest {where} has digest {digest}, not the {header[:80]} the registry says")
    return body, media_type(body, ctype, where), digest


def pull(store: Store, blobs: BlobStore, ref: Ref, platform: Platform, *, insecure: bool,
         progress: Progress | None, lock_timeout: float) -> dict[str, Any]:
    """Pull `ref` into the store and point its name at it; return its index row."""
    with blobs.lock(shared=True, timeout=lock_timeout) as held:
        added: list[str] = []
        try:
            return _pull(store, blobs, ref, platform, insecure, progress, added)
        except BaseException:
            if held.upgrade():  # else another pull may be using them: prune will see to them
                index.forget(store, blobs, added)
            raise


def _pull(store: Store, blobs: BlobStore, ref: Ref, platform: Platform, insecure: bool, progress: Progress | None,
          added: list[str]) -> dict[str, Any]:
    with opened(ref.registry, insecure=insecure, creds=auth.credentials(ref.registry)) as reg:
        body, kind, digest = _get(reg, ref, ref.reference, None)
        fetched = [(body, digest)]
        doc = parse(body, kind, str(ref))
        for _ in range(MAX_NESTING):
            if not isinstance(doc, Index):
                break
            chosen = select(doc, platform.os, platform.architecture, str(ref))
            body, kind, mdigest = _get(reg, ref, chosen.digest, chosen)
            fetched.append((body, mdigest))
            doc = parse(body, kind, f"{ref.name}@{mdigest}")
        if not isinstance(doc, Manifest):
            raise HostError(f"image {ref} nests indexes deeper than {MAX_NESTING}")
        missing = list({d.digest: d for d in doc.blobs if not blobs.has(d.digest, d.size)}.values())
        added += [d.digest for d in missing]
        _fetch_all(reg, blobs, ref, missing, progress)
        for data, dg in fetched:
            if not blobs.has(dg):
                added.append(dg)
                blobs.put(data, dg, ref.registry)
    config = blobs.read(doc.config.digest, index.MAX_CONFIG) if doc.config.size <= index.MAX_CONFIG else b""
    size = sum(d.size for d in doc.blobs) + len(fetched[-1][0])
    index.record(store, ref, digest, fetched[-1][1], kind, size, index.created_of(config), time.time())
    return index.find(store, str(ref))[0]


def _fetch_all(reg: Registry, blobs: BlobStore, ref: Ref, missing: list[Descriptor], progress: Progress | None) -> None:
    """The blobs, PARALLEL at a time (as Docker and skopeo do); the first failure stops the rest
    from starting and is the one raised."""
    if len(missing) <= 1:
        for d in missing:
            _fetch(reg, blobs, ref, d, progress)
        return
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="ladle-pull") as pool:
        futures = [pool.submit(_fetch, reg, blobs, ref, d, progress) for d in missing]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()
            raise failed[0].exception()  # type: ignore[misc]


def _fetch(reg: Registry, blobs: BlobStore, ref: Ref, d: Descriptor, progress: Progress | None) -> None:
    """One blob, from the start again if the connection drops on the way."""
    for attempt in range(RETRIES + 1):
        try:
            with blobs.writer(d.digest, d.size, ref.registry) as w:
                reg.fetch(ref.repository, d.digest, w, _bar(progress, d))
            return
        except CutShort:
            if attempt == RETRIES:
                raise
            time.sleep(BACKOFF * 2 ** attempt)


def _bar(progress: Progress | None, d: Descriptor) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    what = d.digest[7:19]
    return lambda done, total: progress(what, done, total)


def push(store: Store, blobs: BlobStore, row: dict[str, Any], dest: Ref, *, insecure: bool, chunk: int,
         progress: Progress | None) -> str:
    """Push the image of `row` to `dest` (the caller holds the store shared); return the manifest's digest."""
    manifest = index.manifest_of(blobs, row)
    body = blobs.read(row["manifest"], MAX_MANIFEST)
    if dest.digest and dest.digest != row["manifest"]:
        raise HostError(f"image {row['name']} has manifest {row['manifest']}, not {dest.digest}")
    source = parse_ref(row["name"])
    mount_from = source.repository if source.registry == dest.registry and source.repository != dest.repository \
        else None
    with opened(dest.registry, insecure=insecure, creds=auth.credentials(dest.registry)) as reg:
        for d in manifest.blobs:
            if not blobs.has(d.digest, d.size):
                raise HostError(f"blob {d.digest} of image {row['name']} is missing from the store: pull it again")
            if reg.has_blob(dest.repository, d.digest):
                continue
            location = reg.start_upload(dest.repository, d.digest, mount_from)
            if location is None:
                continue
            fd = blobs.open(d.digest)
            try:
                reg.upload(dest.repository, location, fd, d.size, d.digest, chunk, _bar(progress, d))
            finally:
                os.close(fd)
        said = reg.put_manifest(dest.repository, dest.digest or dest.tag or "latest", body, row["media_type"])
    if said and said != row["manifest"]:
        raise HostError(f"registry {dest.registry} stored the manifest as {said[:80]}, not {row['manifest']}")
    return str(row["manifest"])
