"""`ladle tag`, `save` and `load` with skopeo as the independent peer: an archive skopeo writes
(`oci-archive:`) ladle loads blob for blob, and one ladle saves skopeo reads with the same digests;
a damaged archive is refused in one line with nothing left in the store."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import HOST_ARCH, Layout, Registry, sha, skopeo

FILES = [{"bin/hello": b"#!/bin/sh\necho hello\n" * 50, "etc/motd": b"layer one\n"}, {"etc/motd": b"layer two\n"}]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    lay = Layout(tmp_path_factory.mktemp("layout"))
    lay.tag("gz", lay.image(FILES))
    lay.tag("zst", lay.image(FILES, how="zstd"))
    lay.tag("multi", lay.index([lay.image([{"etc/arch": b"arm"}], arch="arm64" if HOST_ARCH != "arm64" else "amd64"),
                                lay.image([{"etc/arch": HOST_ARCH.encode()}])]))
    return lay


def stored(cli: Ladle) -> set[str]:
    d = cli.root / "images" / "blobs" / "sha256"
    return {("sha256:" + n) if len(n) == 64 else n for n in os.listdir(d)} if d.exists() else set()


def images(cli: Ladle) -> list[dict[str, Any]]:
    return json.loads(cli("images", "--json").stdout)  # type: ignore[no-any-return]


def oci_blobs(path: Path) -> set[str]:
    return {"sha256:" + n for n in os.listdir(path / "blobs" / "sha256")}


@pytest.mark.parametrize("tag", ["gz", "zst"])
def test_skopeo_archive_loads_and_saves_back_bit_for_bit(ladle: Ladle, layout: Layout, tmp_path: Path,
                                                         tag: str) -> None:
    digest = layout.refs[tag]["digest"]
    archive = tmp_path / "in.tar"
    skopeo("copy", f"oci:{layout.path}:{tag}", f"oci-archive:{archive}:example.org/t/img:{tag}")
    out = ladle("load", "-i", str(archive))
    assert out.stdout == f"loaded example.org/t/img:{tag}\n"
    assert stored(ladle) == layout.closure(digest)
    for d in layout.closure(digest):
        assert (ladle.root / "images/blobs/sha256" / d[7:]).read_bytes() == layout.blobs[d]
    [row] = images(ladle)
    assert (row["name"], row["tag"], row["manifest"]) == ("example.org/t/img", tag, digest)

    saved = tmp_path / "out.tar"
    ladle("save", f"example.org/t/img:{tag}", "-o", str(saved))
    back = tmp_path / "back"
    skopeo("copy", f"oci-archive:{saved}:example.org/t/img:{tag}", f"oci:{back}:x")
    assert oci_blobs(back) == layout.closure(digest)
    assert json.loads((back / "index.json").read_text())["manifests"][0]["digest"] == digest
    for d in layout.closure(digest):
        assert (back / "blobs/sha256" / d[7:]).read_bytes() == layout.blobs[d]
    assert sha(skopeo("inspect", "--raw", f"oci-archive:{saved}").stdout.encode()) == digest  # its one image


def test_an_archive_of_an_index_loads_this_hosts_image(ladle: Ladle, layout: Layout, tmp_path: Path) -> None:
    archive = tmp_path / "multi.tar"
    skopeo("copy", "--all", f"oci:{layout.path}:multi", f"oci-archive:{archive}:multi")
    assert ladle("load", "-i", str(archive)).stdout == "loaded localhost/multi:latest\n"
    [row] = images(ladle)
    assert row["digest"] == layout.refs["multi"]["digest"]
    mine = next(m for m in json.loads(layout.blobs[row["digest"]])["manifests"]
            if m["platform"]["architecture"] == HOST_ARCH)
    assert row["manifest"] == mine["digest"]
    assert layout.closure(mine["digest"]) <= stored(ladle)
    saved = tmp_path / "saved.tar"  # this host's image, as it was pulled
    ladle("save", "localhost/multi", "-o", str(saved))
    assert sha(skopeo("inspect", "--raw", f"oci-archive:{saved}:localhost/multi:latest").stdout.encode()) == \
        mine["digest"]


def test_tag_names_the_same_image_and_rmi_of_one_name_keeps_it(ladle: Ladle, registry: Registry,
                                                                layout: Layout) -> None:
    registry.push(layout, "gz", "t/tagme:gz")
    ladle("pull", f"{registry.host}/t/tagme:gz")
    before = stored(ladle)
    assert ladle("tag", f"{registry.host}/t/tagme:gz", "mine/app:1").stdout == \
        f"tagged {registry.host}/t/tagme:gz as docker.io/mine/app:1\n"
    rows = {(r["name"], r["tag"]): r["manifest"] for r in images(ladle)}
    assert rows == {(f"{registry.host}/t/tagme", "gz"): layout.refs["gz"]["digest"],
                    ("docker.io/mine/app", "1"): layout.refs["gz"]["digest"]}
    ladle("rmi", f"{registry.host}/t/tagme:gz")
    assert stored(ladle) == before  # the other name still uses every blob
    ladle("push", "mine/app:1", f"{registry.host}/t/retagged:1")
    assert sha(registry.raw("t/retagged:1")) == layout.refs["gz"]["digest"]
    line = ladle.fails("tag", "nothing/here:1", "x/y:2")
    assert "not in the store" in line
    line = ladle.fails("tag", "mine/app:1", "x/Y:2")
    assert "invalid repository" in line


def test_save_refuses_a_missing_image_and_a_directory(ladle: Ladle, tmp_path: Path) -> None:
    assert "not in the store" in ladle.fails("save", "nothing:1", "-o", str(tmp_path / "x.tar"))
    assert not (tmp_path / "x.tar").exists()


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _layout_members(layout: Layout, tag: str, skip: str | None = None,
                    corrupt: str | None = None) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    digest = layout.refs[tag]["digest"]
    top = {"schemaVersion": 2, "manifests": [{**layout.refs[tag]}]}
    out: list[tuple[tarfile.TarInfo, bytes | None]] = [_file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                                                       _file("index.json", json.dumps(top).encode())]
    for d in sorted(layout.closure(digest)):
        if d == skip:
            continue
        data = layout.blobs[d]
        out.append(_file(f"blobs/sha256/{d[7:]}", data[:-1] + b"X" if d == corrupt else data))
    return out


def test_a_blob_that_does_not_match_its_name_is_refused(ladle: Ladle, layout: Layout, tmp_path: Path) -> None:
    layer = json.loads(layout.blobs[layout.refs["gz"]["digest"]])["layers"][0]["digest"]
    bad = _archive(tmp_path / "bad.tar", _layout_members(layout, "gz", corrupt=layer))
    line = ladle.fails("load", "-i", str(bad))
    assert f"blob {layer}" in line and "refused" in line, line
    assert stored(ladle) == set() and images(ladle) == []


def test_a_manifest_naming_a_missing_blob_is_refused(ladle: Ladle, layout: Layout, tmp_path: Path) -> None:
    layer = json.loads(layout.blobs[layout.refs["gz"]["digest"]])["layers"][1]["digest"]
    bad = _archive(tmp_path / "short.tar", _layout_members(layout, "gz", skip=layer))
    line = ladle.fails("load", "-i", str(bad))
    assert f"names blob {layer}" in line and "lacks" in line, line
    assert stored(ladle) == set() and images(ladle) == []


def test_a_load_beside_an_image_keeps_its_shared_blobs(ladle: Ladle, layout: Layout, tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    skopeo("copy", f"oci:{layout.path}:gz", f"oci-archive:{good}:example.org/a:1")
    ladle("load", "-i", str(good))
    before = stored(ladle)
    zst = json.loads(layout.blobs[layout.refs["zst"]["digest"]])
    assert zst["config"]["digest"] in before  # gzip and zstd layers of the same tars: one config
    bad = _archive(tmp_path / "bad.tar", _layout_members(layout, "zst", corrupt=zst["layers"][1]["digest"]))
    ladle.fails("load", "-i", str(bad))
    assert stored(ladle) == before
    assert [r["name"] for r in images(ladle)] == ["example.org/a"]


@pytest.mark.parametrize("case", ["not-a-tar", "no-layout", "no-index", "missing", "empty-index", "truncated"])
def test_what_is_not_an_image_layout_is_refused(ladle: Ladle, layout: Layout, tmp_path: Path, case: str) -> None:
    members = _layout_members(layout, "gz")
    path = tmp_path / "x.tar"
    if case == "not-a-tar":
        path.write_bytes(b"hello, this is not a tar archive\n" * 100)
    elif case == "missing":
        path = tmp_path / "absent.tar"
    else:
        if case == "no-layout":
            members = members[1:]
        elif case == "no-index":
            members = members[:1] + members[2:]
        elif case == "empty-index":
            members[1] = _file("index.json", b'{"schemaVersion":2,"manifests":[]}')
        _archive(path, members)
        if case == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[:len(data) // 2])
    line = ladle.fails("load", "-i", str(path))
    assert str(path) in line or "archive" in line, line
    assert stored(ladle) == set() and images(ladle) == []
