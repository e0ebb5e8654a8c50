"""`ladle commit` and `ladle build` on ZFS (zfs-fuse): a pot is a clone of its image's top layer,
its changes a diff against a temporary read-only clone of that snapshot (`views/<hex>`). What
it added, changed and deleted reaches an image that ladle and podman run; a build made twice
(one stage or two) is all cached; a failed or killed commit leaves no view, mount or blob."""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import shutil
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leaks
from tests.conftest import Ladle
from tests.registry_fixtures import Registry as Reg
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_build import context, digest_of
from tests.test_build_stages import RAN, TWO
from tests.test_build_stages import context as stages_context
from tests.test_images_run import podman, pushed  # noqa: F401  (a fixture)
from tests.zfs_pool import run, run_busy

SCRIPT = "echo made >/srv/made; echo changed >/srv/motd; rm /opt/old/new"  # as the image's user, worker
SEE = "cat /srv/made /srv/motd; ls -A /opt/old | wc -l; test -e /opt/old/new || echo no-new; echo $GREETING; id -u"


@pytest.fixture
def zfs(zfs_pool: str, tmp_path: Path) -> Iterator[tuple[Ladle, str]]:
    """A ladle on its own dataset; its pots and the dataset destroyed afterwards."""
    cli = Ladle(tmp_path / "root")
    dataset = f"{zfs_pool}/cz{abs(hash(tmp_path)) % 10**8}"
    cli("init", "--storage", "zfs", "--dataset", dataset)
    try:
        yield cli, dataset
    finally:
        for name in cli("ls", "-q", check=False).stdout.split():
            cli("destroy", "-p", name, "-F", check=False)
        run_busy("zfs", "destroy", "-r", dataset)


def made(cli: Ladle, image: str, script: str, name: str = "work") -> None:
    """A pot from `image` that ran `script` and stopped."""
    cli("create", "-p", name, "--image", image, "-c", shlex.quote(script))
    cli("start", name)
    cli("wait", name, check=False)
    cli("stop", name, check=False)


def views(dataset: str) -> list[str]:
    return [d for d in run("zfs", "list", "-H", "-o", "name", "-r", "-t", "all", f"{dataset}/views").split()
            if d != f"{dataset}/views"]


def top_layer(cli: Ladle, ref: str) -> tarfile.TarFile:
    """The plain tar of the last layer of image `ref` in the store."""
    [row] = [r for r in json.loads(cli("images", "--json").stdout) if f"{r['name']}:{r['tag']}" == ref]
    blobs = cli.root / "images" / "blobs" / "sha256"
    manifest = json.loads((blobs / row["manifest"].split(":")[1]).read_bytes())
    layer = manifest["layers"][-1]["digest"].split(":")[1]
    return tarfile.open(fileobj=io.BytesIO(gzip.decompress((blobs / layer).read_bytes())))


def test_commit_on_zfs_runs_in_ladle_and_podman(zfs: tuple[Ladle, str], pushed: dict[str, str],  # noqa: F811
                                                registry: Reg, tmp_path: Path) -> None:  # noqa: F811
    cli, dataset = zfs
    made(cli, pushed["gzip"], SCRIPT)
    dest = f"{registry.host}/test/zfscommit:1"
    assert cli("commit", "-p", "work", dest).stdout.startswith(f"committed pot work as {dest} (sha256:")
    assert views(dataset) == []
    names = set(top_layer(cli, dest).getnames())
    # only what changed (an untouched file is the same ZFS object), never what ladle wrote into the pot
    assert {"srv/made", "srv/motd", "opt/old/.wh.new"} <= names, names
    assert not names & {"bin/busybox", "etc/passwd", "etc/hosts", "etc/resolv.conf"}, sorted(names)
    want = "made\nchanged\n0\nno-new\nhi there\n1000\n"
    assert cli("run", "--rm", dest, SEE).stdout == want
    cli("push", dest)
    got = podman(tmp_path, "run", "--rm", "--tls-verify=false", "--network", "none", dest, SEE)
    try:
        assert got.returncode == 0, got.stderr
        assert got.stdout == want
    finally:
        podman(tmp_path, "rmi", "-a", "-f")
        shutil.rmtree(Path("/tmp") / f"lp{abs(hash(str(tmp_path))) % 10**8}", ignore_errors=True)


def test_an_unchanged_rebuild_on_zfs_is_all_cached(zfs: tuple[Ladle, str], pushed: dict[str, str],  # noqa: F811
                                                   tmp_path: Path) -> None:
    cli, dataset = zfs
    ctx = context(tmp_path, pushed["gzip"])
    out = cli("build", "-t", "localhost/zbuilt:1", str(ctx), timeout=300).stdout
    assert "CACHED" not in out
    assert cli("run", "--rm", "localhost/zbuilt:1").stdout == (
        "the builder ran as 0 in /app for nobody\nhello from the context\ndeep\ntop\n1000\n/app\nthe builder\n"
        "no-arg\n")
    again = cli("build", "-t", "localhost/zbuilt:2", str(ctx), timeout=300).stdout
    assert again.count("--> CACHED") == 11
    assert digest_of(again) == digest_of(out)
    assert cli("ls", "-q").stdout == "" and views(dataset) == []


def test_a_two_stage_build_on_zfs_copies_from_the_first_and_is_cached_again(zfs: tuple[Ladle, str],
                                                                           pushed: dict[str, str],  # noqa: F811
                                                                           tmp_path: Path) -> None:
    cli, dataset = zfs
    ctx = stages_context(tmp_path, TWO, pushed["gzip"])
    out = cli("build", "-t", "localhost/zms:1", str(ctx), timeout=300).stdout
    assert cli("run", "--rm", "localhost/zms:1").stdout == RAN
    again = cli("build", "-t", "localhost/zms:2", str(ctx), timeout=300).stdout
    assert again.count("--> CACHED") == 7 and digest_of(again) == digest_of(out)
    assert cli("ls", "-q").stdout == "" and views(dataset) == []


def _blobs(cli: Ladle) -> set[str]:
    return set(os.listdir(cli.root / "images" / "blobs" / "sha256"))


def _mounts(cli: Ladle) -> list[str]:
    return [m for m in leaks.mounts() if m.split()[1].startswith(str(cli.root) + "/zfs/views/")
            or (m.split()[1].startswith(str(cli.root) + "/") and m.split()[2] not in ("zfs", "fuse", "fuse.zfs"))]


def test_a_failed_commit_leaves_no_view_mount_or_blob(zfs: tuple[Ladle, str], pushed: dict[str, str],  # noqa: F811
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, dataset = zfs
    made(cli, pushed["gzip"], SCRIPT)
    before = _blobs(cli)
    conf = tmp_path / "ladle.toml"
    conf.write_text("max_tar_members = 2\n")
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    line = cli.fails("commit", "-p", "work", "localhost/never:1")
    assert "more than 2 entries (max_tar_members" in line, line
    assert views(dataset) == [] and _mounts(cli) == [] and _blobs(cli) == before
    assert "never" not in cli("images").stdout


def test_a_killed_commit_leaves_its_view_to_gc(zfs: tuple[Ladle, str], pushed: dict[str, str],  # noqa: F811
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cli, dataset = zfs
    made(cli, pushed["gzip"], SCRIPT)
    monkeypatch.setenv("LADLE_FAULT", "view:1")  # killed once its view is made (a clone and its row)
    assert cli("commit", "-p", "work", "localhost/killed:1", check=False).returncode == -signal.SIGKILL
    [left] = views(dataset)
    monkeypatch.delenv("LADLE_FAULT")
    out = cli("gc").stdout
    assert f"removed the view views/{left.rsplit('/', 1)[1]}" in out, out
    assert views(dataset) == [] and _mounts(cli) == []
    assert "removed the view" not in cli("gc").stdout
    cli("commit", "-p", "work", "localhost/after:1")
    assert views(dataset) == []
