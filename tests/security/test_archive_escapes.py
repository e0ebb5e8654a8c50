"""Escape probes for `ladle load`: an archive whose members try to leave the image layout (`..`,
absolute paths), link out of it (symbolic and hard links to a victim), plant device nodes, or
exhaust the loader with members. Each is refused in one line; nothing is written anywhere (no
blob, no index row, no file outside the archive's directory)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Ladle

LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
HEX = "0" * 64


def tree(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*") if p.parent.name != "locks"}


def _write(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            t.addfile(info, io.BytesIO(body) if body is not None else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def _probe(ladle: Ladle, tmp_path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> str:
    archive = tmp_path / "evil" / "a.tar"
    archive.parent.mkdir()
    base = [_member("oci-layout"), _member("index.json")]
    _write(archive, base + members, {"oci-layout": LAYOUT, "index.json": b'{"schemaVersion":2,"manifests":[]}',
                                     **data})
    before = tree(tmp_path)
    line = ladle.fails("load", "-i", str(archive))
    assert tree(tmp_path) == before
    assert json.loads(ladle("images", "--json").stdout) == []
    return line


@pytest.mark.parametrize("name", ["../victim", "../../victim", "/tmp/ladle-archive-victim", "blobs/../../victim",
                                  f"blobs/sha256/../../../{HEX}", "./../victim", "blobs//sha256/x"])
def test_a_member_outside_the_layout_is_refused(ladle: Ladle, tmp_path: Path, name: str) -> None:
    line = _probe(ladle, tmp_path, [_member(name)], {name: b"owned\n"})
    assert "outside the layout" in line, line
    assert not Path("/tmp/ladle-archive-victim").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_refused(ladle: Ladle, tmp_path: Path, kind: bytes) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    for name in (f"blobs/sha256/{HEX}", "index.json", "blobs"):
        line = _probe_named(ladle, tmp_path, _member(name, kind, str(victim)))
        assert "link" in line and "refused" in line, line
    assert victim.read_text() == "secret\n"


def _probe_named(ladle: Ladle, tmp_path: Path, member: tarfile.TarInfo) -> str:
    archive = tmp_path / f"links-{member.name.replace('/', '_')}-{member.type.decode()}.tar"
    _write(archive, [_member("oci-layout"), member], {"oci-layout": LAYOUT})
    before = tree(tmp_path)
    line = ladle.fails("load", "-i", str(archive))
    assert tree(tmp_path) == before
    return line


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_special_files_are_refused(ladle: Ladle, tmp_path: Path, kind: bytes) -> None:
    line = _probe(ladle, tmp_path, [_member(f"blobs/sha256/{HEX}", kind)], {})
    assert "special file" in line, line


def test_a_huge_member_count_is_refused(ladle: Ladle, tmp_path: Path) -> None:
    from ladle.images.archive import MAX_MEMBERS
    many = [_member(f"junk/{i}") for i in range(MAX_MEMBERS + 1)]
    line = _probe(ladle, tmp_path, many, {})
    assert f"more than {MAX_MEMBERS} members" in line, line


def test_a_huge_index_is_refused_unread(ladle: Ladle, tmp_path: Path) -> None:
    archive = tmp_path / "big.tar"
    _write(archive, [_member("oci-layout"), _member("index.json")],
           {"oci-layout": LAYOUT, "index.json": b" " * (5 << 20)})
    line = ladle.fails("load", "-i", str(archive))
    assert "larger than" in line, line


def test_a_blob_name_that_is_not_a_digest_is_refused(ladle: Ladle, tmp_path: Path) -> None:
    line = _probe(ladle, tmp_path, [_member("blobs/sha256/" + "A" * 64)], {"blobs/sha256/" + "A" * 64: b"x"})
    assert "invalid name" in line, line


def test_an_index_naming_a_path_is_refused(ladle: Ladle, tmp_path: Path) -> None:
    archive = tmp_path / "idx.tar"
    top = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                              "digest": "sha256:../../../etc/passwd", "size": 10}]}
    _write(archive, [_member("oci-layout"), _member("index.json")],
           {"oci-layout": LAYOUT, "index.json": json.dumps(top).encode()})
    line = ladle.fails("load", "-i", str(archive))
    assert "invalid digest" in line, line
