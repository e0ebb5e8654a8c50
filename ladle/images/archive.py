"""OCI image layout archives (`ladle save` and `ladle load`): a tar of `oci-layout`, `index.json`
and `blobs/sha256/<hex>`, as `skopeo` reads and writes them as `oci-archive:FILE[:REF]`.

A save writes this host's manifest of an image, its config and layers, and names it in
`index.json` by its full reference (`org.opencontainers.image.ref.name`); the archive appears
under its name only once it is complete. A load reads the archive as a stream, never unpacking
it: each blob goes through the content store's writer, which checks its size and digest before
it becomes visible; links, devices, paths outside the layout and more than MAX_MEMBERS members
are refused; the names are recorded only once every blob their manifests need is in the store,
and a load that fails removes the blobs it brought and nothing else uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from typing import IO, Any

from ladle import files
from ladle.errors import HostError, UsageError
from ladle.images import index
from ladle.images.blobs import BlobStore
from ladle.images.media import INDEXES, MAX_MANIFEST, Index, Manifest, media_type, parse, select
from ladle.images.refs import DIGEST, Ref
from ladle.images.refs import parse as parse_ref
from ladle.names import short
from ladle.state.store import Store

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
MAX_MEMBERS = 10_000  # an image has a few dozen blobs; a layout of thousands is an attack
MAX_INDEX = 4 << 20
BUFFER = 1 << 20


# Save -------------------------------------------------------------------------------------------

def save(blobs: BlobStore, row: dict[str, Any], path: str) -> int:
    """Write the image of `row` to `path` (atomically: a temporary file beside it, renamed);
    return the archive's size."""
    manifest = index.manifest_of(blobs, row)
    body = blobs.read(row["manifest"], MAX_MANIFEST)
    for d in manifest.blobs:
        if not blobs.has(d.digest, d.size):
            raise HostError(f"blob {d.digest} of image {row['name']} is missing from the store: pull it again")
    name = f"{row['name']}:{row['tag']}" if row["tag"] else f"{row['name']}@{row['manifest']}"
    top = {"schemaVersion": 2, "manifests": [{"mediaType": row["media_type"], "digest": row["manifest"],
                                              "size": len(body), "annotations": {REF_NAME: name}}]}
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"-o {short(path)} is a directory: give the archive's file name")
    if not os.path.isdir(directory):
        raise UsageError(f"-o {short(path)}: no directory {short(directory)}")
    with files.replacing(path, 0o644, buffering=BUFFER) as out, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", LAYOUT)
        _add(tar, "index.json", json.dumps(top, separators=(",", ":")).encode())
        for dirname in ("blobs", "blobs/sha256"):
            info = _info(dirname, 0)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for digest in dict.fromkeys((row["manifest"], *(d.digest for d in manifest.blobs))):
            blob = blobs.open(digest)
            with os.fdopen(blob, "rb") as f:
                tar.addfile(_info(f"blobs/sha256/{digest[7:]}", os.fstat(blob).st_size), f)
    return os.stat(path).st_size


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


# Load -------------------------------------------------------------------------------------------

def load(store: Store, blobs: BlobStore, path: str, os_name: str, arch: str, added: list[str]) -> list[str]:
    """Load the archive at `path`; return the references it named. `added` collects the blobs
    it brought, for the caller to remove if this fails."""
    source = f"archive {short(path)}"
    top = None
    layout_seen = False
    with _open(path, source) as tar:
        for count, member in enumerate(_members(tar, source), 1):
            if count > MAX_MEMBERS:
                raise HostError(f"{source} has more than {MAX_MEMBERS} members: refused")
            name = _member_name(member, source)
            if member.isdir():
                continue
            if name == "oci-layout":
                layout_seen = True
                _check_layout(_small(tar, member, 4096, source), source)
            elif name == "index.json":
                top = _small(tar, member, MAX_INDEX, source)
            elif name.startswith("blobs/sha256/"):
                digest = "sha256:" + name[len("blobs/sha256/"):]
                if not DIGEST.fullmatch(digest):
                    raise HostError(f"{source} has a blob with an invalid name {short(name)}")
                if blobs.has(digest, member.size):
                    continue
                added.append(digest)
                _stream(tar, member, blobs, digest, source)
            # anything else (Docker's manifest.json, other algorithms) is ignored, as the spec says
    if not layout_seen:
        raise HostError(f"{source} is not an OCI image layout: it has no oci-layout file")
    if top is None:
        raise HostError(f"{source} is not an OCI image layout: it has no index.json")
    return _record(store, blobs, top, os_name, arch, source)


@contextlib.contextmanager
def _open(path: str, source: str) -> Iterator[tarfile.TarFile]:
    """The archive as a stream (plain, gzip, bzip2 or xz); a FIFO or a device is refused unread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"no archive {short(path)}") from None
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{source} is not a file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb", buffering=BUFFER) as f:
        try:
            tar = tarfile.open(fileobj=f, mode="r|*", bufsize=BUFFER)  # noqa: SIM115  (closed below)
        except (tarfile.TarError, OSError) as e:
            raise HostError(f"{source} is not a tar archive: {e}") from None
        with tar:
            yield tar


def _members(tar: tarfile.TarFile, source: str) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except (tarfile.TarError, EOFError, OSError) as e:
        raise HostError(f"{source} is damaged: {e}") from None


def _member_name(member: tarfile.TarInfo, source: str) -> str:
    """The member's path inside the layout; a link, a device or a path leaving it is refused."""
    raw = member.name
    name = raw.removeprefix("./").rstrip("/") if raw not in (".", "./") else ""
    parts = name.split("/") if name else []
    if raw.startswith("/") or "\0" in raw or any(p in ("..", "") for p in parts) or \
            any(p == "." for p in parts):
        raise HostError(f"{source} has a member outside the layout: {short(raw)}: refused")
    if member.issym() or member.islnk():
        raise HostError(f"{source} has a link {short(raw)}: refused (an image layout holds only files)")
    if member.issparse() or not (member.isfile() or member.isdir()):
        raise HostError(f"{source} has a special file {short(raw)}: refused (an image layout holds only files)")
    return name


def _small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, source: str) -> bytes:
    if member.size > limit:
        raise HostError(f"{source}: {short(member.name)} is larger than {limit} bytes: refused")
    f = tar.extractfile(member)
    assert f is not None
    return f.read()


def _check_layout(data: bytes, source: str) -> None:
    try:
        version = json.loads(data).get("imageLayoutVersion")
    except (ValueError, UnicodeDecodeError, AttributeError):
        version = None
    if not isinstance(version, str) or not version.startswith("1."):
        raise HostError(f"{source} has an oci-layout of an unknown version")


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo, blobs: BlobStore, digest: str, source: str) -> None:
    blobs.ensure()
    st = os.statvfs(blobs.dir)
    if member.size > st.f_bavail * st.f_frsize:
        raise HostError(f"{source}: blob {digest} is {member.size} bytes, more than the store's file system has free")
    f: IO[bytes] | None = tar.extractfile(member)
    assert f is not None
    with blobs.writer(digest, member.size, source) as w:
        try:
            while data := f.read(BUFFER):
                w.write(data)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise HostError(f"{source} is damaged: blob {digest}: {e}") from None


def _record(store: Store, blobs: BlobStore, top: bytes, os_name: str, arch: str, source: str) -> list[str]:
    """Name every image `index.json` names, once all its blobs are in the store."""
    doc = parse(top, INDEXES[0], f"{source}: index.json")
    assert isinstance(doc, Index)
    if not doc.manifests:
        raise HostError(f"{source} names no image")
    entries = json.loads(top)["manifests"]
    todo = []
    for desc, entry in zip(doc.manifests, entries, strict=False):
        ref = _name(entry.get("annotations"), desc.digest, source)
        kind, manifest, man_body = _resolve(blobs, desc.digest, desc.size, desc.media_type, os_name, arch, source)
        m = parse(man_body, kind, f"{source}: {manifest}")
        assert isinstance(m, Manifest)
        for d in m.blobs:
            if not blobs.has(d.digest, d.size):
                raise HostError(f"{source}: manifest {manifest} names blob {d.digest} ({d.size} bytes), "
                                "which the archive lacks: refused")
        config = blobs.read(m.config.digest, index.MAX_CONFIG) if m.config.size <= index.MAX_CONFIG else b""
        size = sum(d.size for d in m.blobs) + len(man_body)
        todo.append((ref, desc.digest, manifest, kind, size, index.created_of(config)))
    now = time.time()
    for ref, digest, manifest, kind, size, created in todo:
        index.record(store, ref, digest, manifest, kind, size, created, now)
    return [str(t[0]) for t in todo]


def _resolve(blobs: BlobStore, digest: str, size: int, declared: str, os_name: str, arch: str,
             source: str) -> tuple[str, str, bytes]:
    """This host's manifest's kind, digest and body, through an index if need be."""
    if not blobs.has(digest, size):
        raise HostError(f"{source}: index.json names {digest} ({size} bytes), which the archive lacks: refused")
    body = blobs.read(digest, MAX_MANIFEST)
    kind = media_type(body, declared, f"{source}: {digest}")
    if kind not in INDEXES:
        return kind, digest, body
    idx = parse(body, kind, f"{source}: {digest}")
    assert isinstance(idx, Index)
    chosen = select(idx, os_name, arch, f"{source}: {digest}")
    if not blobs.has(chosen.digest, chosen.size):
        raise HostError(f"{source}: index {digest} names manifest {chosen.digest}, which the archive lacks: refused")
    man_body = blobs.read(chosen.digest, MAX_MANIFEST)
    man_kind = media_type(man_body, chosen.media_type, f"{source}: {chosen.digest}")
    if man_kind in INDEXES:
        raise HostError(f"{source}: index {digest} nests another index: ladle loads one level")
    return man_kind, chosen.digest, man_body


def _name(annotations: object, digest: str, source: str) -> Ref:
    """The name an entry of index.json gives: a full reference (with a '/') as is; a bare tag
    (what `skopeo copy ... oci-archive:FILE:TAG` writes) as localhost/TAG; none: by digest."""
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    if name is None:
        return Ref("localhost", "loaded", None, digest)
    if not isinstance(name, str):
        raise HostError(f"{source} has a {REF_NAME} that is not a string")
    try:
        return parse_ref(name if "/" in name else f"localhost/{name}")
    except UsageError as e:
        raise HostError(f"{source} names an image {short(name)} ladle cannot use: {e}") from None
