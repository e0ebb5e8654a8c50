"""Manifests and indexes (image-spec v1.1 and Docker's v2 schema 2), read strictly enough that
nothing they name can leave the store: every digest is a sha256 one, every size a sane integer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ladle.errors import HostError
from ladle.images.refs import DIGEST

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEXES, *MANIFESTS))
MAX_MANIFEST = 4 << 20  # registries must take manifests of 4 MB; more is refused
MAX_BLOB = 1 << 40


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def media_type(body: bytes, content_type: str | None, where: str) -> str:
    """The type of a manifest: its `mediaType`, or the type it was served as; the two must agree."""
    served = (content_type or "").split(";", 1)[0].strip().lower()
    doc = _json(body, where)
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise HostError(f"manifest {where} has a mediaType that is not a string")
    if declared and served in (*INDEXES, *MANIFESTS) and declared != served:
        raise HostError(f"manifest {where} says it is {_shown(declared)} but was served as {_shown(served)}")
    kind = declared or served
    if kind not in (*INDEXES, *MANIFESTS):
        raise HostError(f"manifest {where} is of an unsupported media type {_shown(kind or 'none')}")
    return kind


def parse(body: bytes, kind: str, where: str) -> Manifest | Index:
    doc = _json(body, where)
    if doc.get("schemaVersion") != 2:
        raise HostError(f"manifest {where} is not of schema version 2")
    if kind in INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise HostError(f"index {where} has no list of manifests")
        return Index(kind, tuple(_descriptor(e, where) for e in entries))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise HostError(f"manifest {where} has no list of layers")
    return Manifest(kind, _descriptor(doc.get("config"), where), tuple(_descriptor(x, where) for x in layers))


def select(index: Index, os_name: str, arch: str, where: str) -> Descriptor:
    """The first manifest for this platform (image-spec: the first match SHOULD be used)."""
    for d in index.manifests:
        p = d.platform or {}
        if p.get("os") == os_name and p.get("architecture") == arch and d.media_type in (*MANIFESTS, *INDEXES):
            return d
    have = sorted({f"{(d.platform or {}).get('os')}/{(d.platform or {}).get('architecture')}"
                   for d in index.manifests})
    raise HostError(f"image {where} has no manifest for {os_name}/{arch} (it has {', '.join(have) or 'none'})")


def _descriptor(d: object, where: str) -> Descriptor:
    if not isinstance(d, dict):
        raise HostError(f"manifest {where} has a descriptor that is not an object")
    mt, digest, size, platform = d.get("mediaType"), d.get("digest"), d.get("size"), d.get("platform")
    if not isinstance(mt, str) or not mt or len(mt) > 255 or not mt.isprintable():
        raise HostError(f"manifest {where} has a descriptor without a valid mediaType")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise HostError(f"manifest {where} names a blob by an invalid digest {_shown(str(digest))}")
    if type(size) is not int or not 0 <= size <= MAX_BLOB:
        raise HostError(f"manifest {where} gives blob {digest} an invalid size {_shown(str(size))}")
    if platform is not None and not isinstance(platform, dict):
        raise HostError(f"manifest {where} has a platform that is not an object")
    return Descriptor(mt, digest, size, platform)


def _json(body: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HostError(f"manifest {where} is not JSON") from None
    if not isinstance(doc, dict):
        raise HostError(f"manifest {where} is not a JSON object")
    return doc


def _shown(text: str) -> str:
    """Text from a registry in a one-line message: printable, short."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean if len(clean) <= 80 else clean[:80] + "...")
