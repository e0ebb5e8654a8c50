"""Snapshots, clones, fscomps and mounts, on both storage backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle, _teardown
from tests.zfs_pool import run, run_busy


@pytest.fixture(params=["dir", "zfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ladle]:
    """A ladle with the busybox base on each backend (ZFS on a file-backed test pool)."""
    cli = Ladle(tmp_path / "root")
    if request.param == "zfs":
        pool = request.getfixturevalue("zfs_pool")
        cli("init", "--storage", "zfs", "--dataset", f"{pool}/t{abs(hash(tmp_path)) % 10**8}")
    else:
        cli("init")
    cli("create-base", "-r", "busybox")
    yield cli
    _teardown(cli)
    for fscomp in json.loads(cli("fscomps", "--json").stdout):
        cli("destroy", "-f", fscomp["name"], check=False)
    cli("destroy", "-b", "busybox", "-r", "-F", check=False)
    if request.param == "zfs":
        run_busy("zfs", "destroy", "-r", _dataset(cli))


def _dataset(cli: Ladle) -> str:
    import sqlite3
    db = sqlite3.connect(cli.root / "ladle.db")
    value = db.execute("SELECT value FROM settings WHERE key='dataset'").fetchone()
    db.close()
    return str(value[0]) if value else ""


def put(cli: Ladle, pot: str, tmp_path: Path, text: str, dest: str = "/data/f") -> None:
    f = tmp_path / "src"
    f.write_text(text)
    cli("copy-in", "-p", pot, "-s", str(f), "-d", dest, "-c")


def get(cli: Ladle, pot: str, tmp_path: Path, src: str = "/data/f") -> str:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cli("copy-out", "-p", pot, "-s", src, "-d", str(out))
    text = (out / Path(src).name).read_text()
    (out / Path(src).name).unlink()
    return text


def test_snapshot_and_rollback(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "a", "-b", "busybox")
    put(store, "a", tmp_path, "one")
    store("snapshot", "-p", "a", "-n", "first")
    put(store, "a", tmp_path, "two")
    store("snapshot", "-p", "a", "-n", "second")
    put(store, "a", tmp_path, "three")
    store("rollback", "-p", "a")
    assert get(store, "a", tmp_path) == "two"
    store("revert", "-p", "a", "-s", "first")
    assert get(store, "a", tmp_path) == "one"
    assert store("snapshots", "-p", "a").stdout.split() == ["first"]


def test_clone_is_independent_and_promote_works(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "src", "-b", "busybox")
    put(store, "src", tmp_path, "original")
    assert "no snapshot" in store.fails("clone", "-p", "c", "-P", "src")
    store("snapshot", "-p", "src")
    store("clone", "-p", "c", "-P", "src")
    put(store, "src", tmp_path, "changed")
    assert get(store, "c", tmp_path) == "original"
    store("promote", "-p", "c")
    store("destroy", "-p", "src", "-r")
    assert get(store, "c", tmp_path) == "original"


def test_level_two_starts_from_the_latest_snapshot(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "l1", "-b", "busybox")
    put(store, "l1", tmp_path, "at the snapshot")
    assert "take one with 'ladle snapshot -p l1'" in store.fails("create", "-p", "l2", "-l", "2", "-P", "l1")
    store("snapshot", "-p", "l1", "-n", "s1")
    store("create", "-p", "l2", "-l", "2", "-P", "l1")
    put(store, "l1", tmp_path, "later")
    assert get(store, "l2", tmp_path) == "at the snapshot"
    assert json.loads(store("info", "-p", "l2", "--json").stdout)["storage"]["parent"] == "pots/l1@s1"
    assert "used by pots/l2" in store.fails("purge-snapshots", "-p", "l1", "-a")


def test_purge_snapshots_keeps_the_newest(store: Ladle) -> None:
    store("create", "-p", "a", "-b", "busybox")
    for n in ("s1", "s2", "s3"):
        store("snapshot", "-p", "a", "-n", n)
    store("purge-snapshots", "-p", "a", "-k", "2")
    assert store("snapshots", "-p", "a").stdout.split() == ["s2", "s3"]
    store("purge-snapshots", "-p", "a")
    assert store("snapshots", "-p", "a").stdout.split() == ["s3"]
    store("purge-snapshots", "-p", "a", "-a")
    assert store("snapshots", "-p", "a").stdout.split() == []


def test_fscomps_mount_read_only_and_read_write(store: Ladle, tmp_path: Path) -> None:
    store("create-fscomp", "-f", "data")
    store("create-fscomp", "-f", "conf")
    hostdir = tmp_path / "host"
    hostdir.mkdir()
    store("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    store("add-fscomp", "-p", "a", "-f", "data", "-m", "/data")
    store("add-fscomp", "-p", "a", "-f", "conf", "-m", "/conf", "--ro")
    store("mount-in", "-p", "a", "-d", str(hostdir), "-m", "/host")
    store("start", "a")
    try:
        store("exec", "a", "--", "sh", "-c", "echo persisted > /data/x; echo shared > /host/y")
        assert store("exec", "a", "--", "sh", "-c", "echo no > /conf/z", check=False).returncode != 0
    finally:
        store("stop", "a")
    assert (hostdir / "y").read_text() == "shared\n"
    store("snapshot", "-f", "data")
    store("clone-fscomp", "-F", "data", "-f", "data2")
    [path] = [f["path"] for f in json.loads(store("fscomps", "--json").stdout) if f["name"] == "data2"]
    assert (Path(path) / "x").read_text() == "persisted\n"
    assert "mounted in pots a" in store.fails("destroy", "-f", "data")
    store("mount-out", "-p", "a", "-m", "/data")
    store("destroy", "-f", "data2")
    store("destroy", "-f", "data")


def test_copy_never_follows_a_symlink_out_of_the_pot(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    outside = tmp_path / "outside"
    outside.mkdir()
    store("start", "a")
    try:
        store("exec", "a", "--", "sh", "-c", f"ln -s {outside} /escape; ln -s ../../../../../.. /up")
    finally:
        store("stop", "a")
    put(store, "a", tmp_path, "in the pot", dest="/escape/f")
    assert not (outside / "f").exists()
    put(store, "a", tmp_path, "also in the pot", dest="/up/etc/marker")
    assert get(store, "a", tmp_path, src="/etc/marker") == "also in the pot"
    assert not Path("/etc/marker").exists()


def test_gc_removes_storage_that_no_state_knows(store: Ladle) -> None:
    dataset = _dataset(store)
    if dataset:
        run("zfs", "create", f"{dataset}/pots/ghost")
    else:
        (store.root / "storage" / "pots" / "ghost" / "fs").mkdir(parents=True)
    assert "removed orphaned storage pots/ghost" in store("gc").stdout
    assert "nothing to clean up" in store("gc").stdout
    if dataset:
        assert f"{dataset}/pots/ghost" not in run("zfs", "list", "-H", "-o", "name", "-r", dataset).split()
    assert not (store.root / "storage" / "pots" / "ghost").exists()


def test_mounts_change_at_once_in_a_running_pot(store: Ladle, tmp_path: Path) -> None:
    hostdir, outside = tmp_path / "host", tmp_path / "outside"
    hostdir.mkdir()
    outside.mkdir()
    (hostdir / "from-host").write_text("hello\n")
    store("create-fscomp", "-f", "conf")
    store("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    store("start", "a")
    try:
        store("exec", "a", "--", "ln", "-s", str(outside), "/escape")
        assert "is mounted" in store("mount-in", "-p", "a", "-d", str(hostdir), "-m", "/escape/live").stdout
        assert store("exec", "a", "--", "cat", "/escape/live/from-host").stdout == "hello\n"
        store("exec", "a", "--", "sh", "-c", "echo back > /escape/live/from-pot")
        assert (hostdir / "from-pot").read_text() == "back\n"
        assert not list(outside.iterdir())  # the symlink resolved inside the pot, not on the host
        store("add-fscomp", "-p", "a", "-f", "conf", "-m", "/conf", "--ro")
        assert store("exec", "a", "--", "sh", "-c", "echo no > /conf/x", check=False).returncode != 0
        store("mount-out", "-p", "a", "-m", "/escape/live")
        assert store("exec", "a", "--", "ls", "/escape/live").stdout == ""
    finally:
        store("stop", "a")
    store("start", "a")  # the fscomp added while running is mounted at every start from now on
    try:
        assert store("exec", "a", "--", "sh", "-c", "echo no > /conf/x", check=False).returncode != 0
    finally:
        store("stop", "a")


def test_a_second_root_cannot_take_a_dataset_another_root_owns(zfs_pool: str, tmp_path: Path) -> None:
    dataset = f"{zfs_pool}/owned{abs(hash(tmp_path)) % 10**8}"
    first, second = Ladle(tmp_path / "first"), Ladle(tmp_path / "second")
    first("init", "--storage", "zfs", "--dataset", dataset)
    try:
        first("create-base", "-r", "busybox")
        line = second.fails("init", "--storage", "zfs", "--dataset", dataset)
        assert line == (f"ladle: dataset {dataset} belongs to the ladle state root {first.root} (ladle:root): "
                        "choose another dataset, or take it over with 'ladle init --force'")
        assert run("zfs", "get", "-H", "-o", "value", "mountpoint", dataset).strip() == f"{first.root}/zfs"
        assert (first.root / "zfs" / "bases" / "busybox" / "bin" / "busybox").exists()
        assert not second.root.exists()  # refused before anything was made
        first("destroy", "-b", "busybox")
    finally:
        run_busy("zfs", "destroy", "-r", dataset)


def test_destroy_follows_only_real_dependencies(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "a", "-b", "busybox")
    put(store, "a", tmp_path, "from a")
    store("snapshot", "-p", "a")
    store("create", "-p", "copy", "-P", "a")  # a copy of a's snapshot: it depends on nothing of a
    store("snapshot", "-p", "copy")
    store("clone", "-p", "cc", "-P", "copy")
    assert "destroyed pot a" in store("destroy", "-p", "a", "-r").stdout
    assert store("ls", "-q").stdout.split() == ["cc", "copy"]
    assert get(store, "copy", tmp_path) == get(store, "cc", tmp_path) == "from a"
    assert json.loads(store("info", "-p", "copy", "--json").stdout)["potbase"] is None
    if _dataset(store):  # a ZFS clone depends on its origin (a dir clone is a copy)
        assert "used by cc" in store.fails("destroy", "-p", "copy")
    store("promote", "-p", "cc")  # now copy depends on cc, not cc on copy
    store("destroy", "-p", "copy")
    assert get(store, "cc", tmp_path) == "from a"


def test_a_snapshot_of_a_level_zero_pot_is_what_new_pots_start_from(store: Ladle, tmp_path: Path) -> None:
    store("create", "-p", "old", "-b", "busybox")
    store("create", "-p", "patcher", "-l", "0", "-b", "busybox", "-c", "sleep 1000")
    put(store, "patcher", tmp_path, "patched", dest="/etc/patch")
    store("start", "patcher")
    try:
        assert "in use by running pot(s) patcher" in store.fails("snapshot", "-p", "patcher")
    finally:
        store("stop", "patcher")
    out = store("snapshot", "-p", "patcher", "-n", "patched").stdout
    assert "snapshot patched of base busybox" in out
    assert store("snapshots", "-p", "patcher").stdout.split()[-1] == "patched"
    store("create", "-p", "new", "-b", "busybox")
    store("create", "-p", "solo", "-t", "single", "-b", "busybox")
    assert get(store, "new", tmp_path, "/etc/patch") == get(store, "solo", tmp_path, "/etc/patch") == "patched"
    out = tmp_path / "out"  # a pot made before the snapshot keeps the tree it started from
    out.mkdir(exist_ok=True)
    assert store("copy-out", "-p", "old", "-s", "/etc/patch", "-d", str(out), check=False).returncode != 0


def test_rollback_of_what_a_running_pot_uses_is_refused_or_restarts_it(store: Ladle, tmp_path: Path) -> None:
    store("create-fscomp", "-f", "data")
    store("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    store("add-fscomp", "-p", "a", "-f", "data", "-m", "/data")
    put(store, "a", tmp_path, "at the snapshot", dest="/data/f")
    store("snapshot", "-f", "data", "-n", "s1")
    store("snapshot", "-p", "a", "-n", "p1")
    store("start", "a")
    try:
        store("exec", "a", "--", "sh", "-c", "echo later > /data/f; echo later > /etc/mine")
        line = store.fails("rollback", "-f", "data")
        assert line == ("ladle: fscomp data is in use by running pot(s) a: stop it first, or use -F to stop and "
                        "restart it")
        assert store.fails("rollback", "-p", "a") == ("ladle: pot a is running: stop it first, or use -F to stop "
                                                      "and restart it")
        assert store("exec", "a", "--", "cat", "/data/f").stdout == "later\n"
        assert "kill -TERM" in store("rollback", "-f", "data", "-F", "--dry-run").stdout  # stops nothing
        assert store("exec", "a", "--", "cat", "/data/f").stdout == "later\n"
        assert "restarted a" in store("rollback", "-f", "data", "-F").stdout
        assert store("exec", "a", "--", "cat", "/data/f").stdout == "at the snapshot"
        assert "restarted a" in store("rollback", "-p", "a", "-F").stdout
        assert store("exec", "a", "--", "cat", "/etc/mine", check=False).returncode != 0
        assert "running" in store("ls").stdout
    finally:
        store("stop", "a")
    store("mount-out", "-p", "a", "-m", "/data")
