"""Image references and platform selection, as Docker and the image spec define them."""

from __future__ import annotations

import pytest

from ladle.errors import HostError, UsageError
from ladle.images import media, refs
from ladle.images.media import Descriptor, Index

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("freebsd/freebsd-runtime:15.0", "docker.io", "freebsd/freebsd-runtime", "15.0", None),
    ("ghcr.io/freebsd/freebsd-runtime:14.snap", "ghcr.io", "freebsd/freebsd-runtime", "14.snap", None),
    ("localhost/x", "localhost", "x", "latest", None),
    ("127.0.0.1:5000/a/b/c:v1_2-3", "127.0.0.1:5000", "a/b/c", "v1_2-3", None),
    ("[::1]:5000/x:1", "[::1]:5000", "x", "1", None),
    (f"127.0.0.1:5000/x@{D}", "127.0.0.1:5000", "x", None, D),
    (f"127.0.0.1:5000/x:1@{D}", "127.0.0.1:5000", "x", "1", D),
])
def test_references_are_normalised(text: str, registry: str, repository: str, tag: str | None,
                                   digest: str | None) -> None:
    ref = refs.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.reference == (digest or tag)


@pytest.mark.parametrize("text", ["", "UPPER", "a//b", "x:", "x:-bad", "x@sha256:abc", f"x@{D.upper()}", "a b",
                                  "x:" + "t" * 129, "127.0.0.1:5000/../x", "x\n"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        refs.parse(text)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1:5000", True), ("127.9.9.9", True), ("localhost:1", True),
                                                ("[::1]:5000", True), ("10.0.0.1:5000", False),
                                                ("ghcr.io", False), ("localhost.example.com", False)])
def test_loopback_registries_are_those_docker_allows_plain_http(host: str, loopback: bool) -> None:
    assert refs.is_loopback(host) is loopback


def _index(*platforms: tuple[str, str]) -> Index:
    return Index(media.OCI_INDEX, tuple(
        Descriptor(media.OCI_MANIFEST, "sha256:" + str(i) * 64, 10, {"os": o, "architecture": a})
        for i, (o, a) in enumerate(platforms)))


def test_a_freebsd_host_picks_freebsd_amd64_and_the_first_match_wins() -> None:
    index = _index(("linux", "amd64"), ("freebsd", "arm64"), ("freebsd", "amd64"), ("freebsd", "amd64"))
    assert media.select(index, "freebsd", "amd64", "x").digest == "sha256:" + "2" * 64
    assert media.select(index, "linux", "amd64", "x").digest == "sha256:" + "0" * 64
    with pytest.raises(HostError, match=r"no manifest for linux/riscv64 \(it has freebsd/amd64, freebsd/arm64, "
                                        r"linux/amd64\)"):
        media.select(index, "linux", "riscv64", "x")


@pytest.mark.parametrize(("declared", "served", "ok"), [
    (media.OCI_MANIFEST, media.OCI_MANIFEST, True), (None, media.OCI_INDEX, True),
    (media.OCI_MANIFEST, "application/json", True), (media.OCI_INDEX, media.OCI_MANIFEST, False),
    ("application/vnd.docker.distribution.manifest.v1+prettyjws", None, False), (None, None, False)])
def test_the_declared_and_served_media_types_must_agree(declared: str | None, served: str | None, ok: bool) -> None:
    body = ('{"schemaVersion":2' + (f',"mediaType":"{declared}"' if declared else "") + "}").encode()
    if ok:
        assert media.media_type(body, served, "x") == (declared or served)
    else:
        with pytest.raises(HostError):
            media.media_type(body, served, "x")
