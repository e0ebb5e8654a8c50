"""The ZFS snapshotter against a real pool (zfs-fuse here): datasets, rows and undo agree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ladle.errors import CommandFailed, Exists, LadleError, NotFound, StateError, UsageError
from ladle.plan.executor import Executor
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Cmd, Context, Step
from ladle.state.store import Store
from ladle.storage.zfs import (
    CATEGORIES,
    ZfsClone,
    ZfsCreate,
    ZfsDestroy,
    ZfsDestroySnapshot,
    ZfsInherit,
    ZfsMount,
    ZfsPromote,
    ZfsRename,
    ZfsRollback,
    ZfsSendReceive,
    ZfsSet,
    ZfsSnapshot,
    ZfsSnapshotter,
    ZfsUnmount,
)
from tests.zfs_pool import ladle_zfs, run, run_busy


@dataclass
class Env:
    zfs: ZfsSnapshotter
    store: Store
    ex: Executor

    def do(self, steps: list[Step]) -> None:
        self.ex.run("test", "storage", steps)

    def write(self, key: str, name: str, text: str) -> None:
        with open(os.path.join(self.zfs.path(key), name), "w") as f:
            f.write(text)

    def read(self, key: str, name: str) -> str:
        with open(os.path.join(self.zfs.path(key), name)) as f:
            return f.read()

    def origins(self) -> dict[str, str]:
        """Layer keys (and key@snap) as ZFS sees them, with their origins as refs."""
        cut = len(self.zfs.dataset) + 1
        top = {self.zfs.dataset, *(self.zfs.ds(c) for c in CATEGORIES)}
        return {name[cut:]: origin[cut:] for name, origin in self.zfs.datasets().items() if name not in top}

    def check(self) -> None:
        """The state store and ZFS agree on layers, snapshots and origins."""
        rows: dict[str, str] = {}
        for layer in self.store.all("layers"):
            rows[layer["key"]] = layer["origin"] or ""
            for snap in self.zfs.snapshots(layer["key"]):
                rows[f"{layer['key']}@{snap}"] = ""
        assert self.origins() == rows


@pytest.fixture
def env(zfs_pool: str) -> Iterator[Env]:
    with ladle_zfs(zfs_pool) as (dataset, root, store):
        zfs = ZfsSnapshotter(root, store, dataset)
        e = Env(zfs, store, Executor(Context(SubprocessRunner(), store)))
        e.do(zfs.init_steps())
        yield e


def base(env: Env, key: str = "bases/b", snaps: tuple[str, ...] = ("1",)) -> None:
    """A layer with file 'f' holding the snapshot name at each snapshot."""
    env.do(env.zfs.new(key))
    for s in snaps:
        env.write(key, "f", s)
        env.do(env.zfs.snapshot(key, s))


def test_init_creates_the_tree_once(env: Env) -> None:
    ds = env.zfs.dataset
    assert set(env.zfs.datasets()) == {ds, f"{ds}/bases", f"{ds}/pots", f"{ds}/fscomps", f"{ds}/layers",
                                       f"{ds}/views"}
    out = run("zfs", "get", "-H", "-o", "value", "mountpoint,atime", ds).split()
    assert out == [os.path.join(env.zfs.root, "zfs"), "off"]
    assert os.path.ismount(env.zfs.path("pots"))
    assert env.zfs.init_steps() == []


def test_init_fixes_a_foreign_mountpoint(env: Env) -> None:
    ds = env.zfs.dataset
    elsewhere = os.path.join(env.zfs.root, "elsewhere")
    run("zfs", "set", f"mountpoint={elsewhere}", ds)
    steps = env.zfs.init_steps()
    assert steps == [ZfsSet(ds, "mountpoint", os.path.join(env.zfs.root, "zfs"), elsewhere)]
    env.do(steps)
    assert os.path.ismount(env.zfs.path("pots"))
    assert not os.path.exists(os.path.join(elsewhere, "pots"))


def test_a_dataset_another_root_owns_is_refused_and_left_alone(env: Env, tmp_path: str) -> None:
    ds, first = env.zfs.dataset, env.zfs.root
    base(env, "bases/b", ("1",))
    assert run("zfs", "get", "-H", "-o", "value", "ladle:root", ds).strip() == first
    other = Store(":memory:")
    second = ZfsSnapshotter(str(tmp_path), other, ds)
    with pytest.raises(StateError, match=rf"^dataset {ds} belongs to the ladle state root {first} \(ladle:root\): "
                       r"choose another dataset, or take it over with 'ladle init --force'$"):
        second.init_steps()
    with pytest.raises(StateError, match=rf"dataset {ds}/pots belongs to the ladle state root {first} .*: "
                       rf"{ds}/pots/x cannot be created inside it"):
        ZfsSnapshotter(str(tmp_path), other, f"{ds}/pots/x").init_steps()
    assert run("zfs", "get", "-H", "-o", "value", "mountpoint", ds).strip() == os.path.join(first, "zfs")
    assert env.read("bases/b", "f") == "1"
    # Taken over deliberately: the first root then destroys nothing of the new owner's.
    Executor(Context(SubprocessRunner(), other)).run("init", "global", second.init_steps(force=True))
    try:
        fresh = ZfsSnapshotter(first, env.store, ds)
        with pytest.raises(StateError, match=rf"^dataset {ds} now belongs to the ladle state root {tmp_path} "):
            fresh.remove("bases/b")
        with pytest.raises(StateError, match="now belongs"):
            fresh.orphans()
        assert os.path.exists(os.path.join(second.path("bases/b"), "f"))
    finally:
        run("zfs", "set", f"mountpoint={os.path.join(first, 'zfs')}", ds)
        run("zfs", "set", f"ladle:root={first}", ds)


def test_new_snapshot_rollback(env: Env) -> None:
    base(env, "pots/a", ("1", "2"))
    env.write("pots/a", "f", "3")
    env.do(env.zfs.rollback("pots/a", "1"))
    assert env.read("pots/a", "f") == "1"
    assert env.zfs.snapshots("pots/a") == ["1"]
    env.check()


def test_new_refuses_an_existing_layer(env: Env) -> None:
    base(env, "pots/a", ())
    with pytest.raises(Exists):
        env.zfs.new("pots/a")


def test_rollback_refused_when_a_later_snapshot_is_an_origin(env: Env) -> None:
    base(env, "bases/b", ("1", "2"))
    env.do(env.zfs.clone("pots/c", "bases/b@2"))
    with pytest.raises(UsageError, match=r"snapshot bases/b@2 is used by pots/c: rolling back to 1 would destroy it"):
        env.zfs.rollback("bases/b", "1")
    env.do(env.zfs.rollback("bases/b", "2"))  # the latest: nothing is destroyed
    env.check()


def test_prepare_from_a_snapshot_is_a_clone(env: Env) -> None:
    base(env, "bases/b", ("1", "2"))
    env.do(env.zfs.prepare("pots/web", "bases/b@1"))
    assert env.read("pots/web", "f") == "1"
    assert env.store.get("layers", key="pots/web") == {
        "key": "pots/web", "kind": "active", "layout": "full", "parent": "bases/b@1", "origin": "bases/b@1"}
    assert env.origins()["pots/web"] == "bases/b@1"
    assert env.zfs.dependants("bases/b") == ["pots/web"]
    assert env.zfs.mounts("pots/web", readonly=True)[0].readonly
    env.check()


def test_clone_is_cheap_and_depends_on_its_origin(env: Env) -> None:
    base(env)
    env.do(env.zfs.clone("pots/c", "bases/b@1"))
    env.write("bases/b", "f", "changed")
    assert env.read("pots/c", "f") == "1"
    with pytest.raises(UsageError, match="snapshot bases/b@1 is used by pots/c"):
        env.zfs.remove_snapshot("bases/b", "1")
    with pytest.raises(CommandFailed):  # the caller checks dependants; ZFS refuses anyway
        env.do(env.zfs.remove("bases/b"))
    assert env.zfs.snapshots("bases/b") == ["1"]  # the forgotten rows came back
    env.check()


def test_copy_is_independent(env: Env) -> None:
    base(env, "pots/a", ("1", "2"))
    env.do(env.zfs.copy("pots/b", "pots/a@1"))
    assert env.read("pots/b", "f") == "1"
    assert env.store.get("layers", key="pots/b") == {
        "key": "pots/b", "kind": "active", "layout": "full", "parent": None, "origin": None}
    assert env.zfs.snapshots("pots/b") == ["1"]  # the received snapshot is kept
    assert env.zfs.dependants("pots/a") == []
    env.check()
    env.do(env.zfs.remove("pots/a"))
    assert env.read("pots/b", "f") == "1"
    env.check()


def test_promote_moves_snapshots_and_origins(env: Env) -> None:
    base(env, "bases/b", ("1", "2", "3"))
    env.do(env.zfs.clone("pots/c", "bases/b@2"))
    env.do(env.zfs.clone("pots/d", "bases/b@1"))
    env.do(env.zfs.clone("pots/e", "bases/b@3"))
    env.write("pots/c", "f", "x")
    env.do(env.zfs.snapshot("pots/c", "x"))
    env.do(env.zfs.promote("pots/c"))
    assert env.zfs.snapshots("pots/c") == ["1", "2", "x"]
    assert env.zfs.snapshots("bases/b") == ["3"]
    layers = {r["key"]: (r["parent"], r["origin"]) for r in env.store.all("layers")}
    assert layers == {"bases/b": ("pots/c@2", "pots/c@2"), "pots/c": (None, None),
                      "pots/d": ("pots/c@1", "pots/c@1"), "pots/e": ("bases/b@3", "bases/b@3")}
    assert env.zfs.dependants("pots/c") == ["bases/b", "pots/d"]
    env.check()
    with pytest.raises(UsageError, match="not a clone"):
        env.zfs.promote("pots/c")
    env.do(env.zfs.promote("bases/b"))  # and back again
    layers = {r["key"]: (r["parent"], r["origin"]) for r in env.store.all("layers")}
    assert layers == {"bases/b": (None, None), "pots/c": ("bases/b@2", "bases/b@2"),
                      "pots/d": ("bases/b@1", "bases/b@1"), "pots/e": ("bases/b@3", "bases/b@3")}
    env.check()


def test_promote_refuses_clashing_snapshot_names(env: Env) -> None:
    base(env, "bases/b", ("1",))
    env.do(env.zfs.clone("pots/c", "bases/b@1"))
    env.do(env.zfs.snapshot("pots/c", "1"))
    with pytest.raises(UsageError, match="named like its origin's: 1"):
        env.zfs.promote("pots/c")


def test_failed_promote_is_undone(env: Env) -> None:
    base(env, "bases/b", ("1", "2"))
    env.do(env.zfs.clone("pots/c", "bases/b@1"))
    def state() -> object:
        return env.origins(), env.store.all("layers", order="key"), env.store.all("snapshots", order="key, name")

    before = state()
    with pytest.raises(CommandFailed):
        env.do([*env.zfs.promote("pots/c"), Cmd(["false"])])
    assert state() == before


def test_rename_follows_snapshots_and_dependants(env: Env) -> None:
    base(env, "pots/a", ("1",))
    env.do(env.zfs.clone("pots/c", "pots/a@1"))
    old_path = env.zfs.path("pots/a")
    env.do(env.zfs.rename("pots/a", "bases/a"))
    assert env.read("bases/a", "f") == "1"
    assert not os.path.exists(old_path)
    assert env.zfs.snapshots("bases/a") == ["1"]
    assert env.store.get("layers", key="pots/c")["origin"] == "bases/a@1"  # type: ignore[index]
    env.check()
    with pytest.raises(Exists):
        env.zfs.rename("bases/a", "pots/c")


def test_rename_unmounts_and_mounts_again(env: Env) -> None:
    base(env, "pots/a", ("1",))
    a, b = env.zfs.ds("pots/a"), env.zfs.ds("pots/b")
    assert [s.render()[0] for s in env.zfs.rename("pots/a", "pots/b")[:3]] == [
        f"zfs unmount {a}", f"zfs rename {a} {b}", f"zfs mount {b}"]
    env.do(env.zfs.rename("pots/a", "pots/b"))
    assert os.path.ismount(env.zfs.path("pots/b"))
    env.check()


def test_rename_of_an_unmounted_layer_mounts_it(env: Env) -> None:
    base(env, "pots/a", ("1",))
    run("zfs", "unmount", env.zfs.ds("pots/a"))
    env.do(env.zfs.rename("pots/a", "pots/b"))
    assert env.read("pots/b", "f") == "1"
    env.check()


def test_failed_rename_is_undone(env: Env) -> None:
    base(env, "pots/a", ("1",))
    env.write("pots/a", "f", "live")
    with pytest.raises(CommandFailed):
        env.do([*env.zfs.rename("pots/a", "pots/b"), Cmd(["false"])])
    assert os.path.ismount(env.zfs.path("pots/a"))
    assert env.read("pots/a", "f") == "live"
    assert not os.path.exists(env.zfs.path("pots/b"))
    env.check()


def test_remove_leaves_nothing(env: Env) -> None:
    base(env, "pots/a", ("1", "2"))
    path = env.zfs.path("pots/a")
    env.do(env.zfs.remove("pots/a"))
    assert not os.path.exists(path)
    assert env.store.all("layers") == [] and env.store.all("snapshots") == []
    env.check()
    with pytest.raises(NotFound):
        env.zfs.remove("pots/a")


def test_remove_snapshot(env: Env) -> None:
    base(env, "pots/a", ("1", "2"))
    env.do(env.zfs.remove_snapshot("pots/a", "1"))
    assert env.zfs.snapshots("pots/a") == ["2"]
    env.check()


def test_clone_onto_an_existing_dataset_fails_and_leaves_nothing(env: Env) -> None:
    base(env)
    run("zfs", "create", env.zfs.ds("pots/taken"))  # made behind ladle's back
    with pytest.raises(CommandFailed, match="dataset already exists"):
        env.do([*env.zfs.new("pots/x"), *env.zfs.clone("pots/taken", "bases/b@1")])
    assert env.zfs.ds("pots/x") not in env.zfs.datasets()
    assert env.store.get("layers", key="pots/x") is None
    run_busy("zfs", "destroy", env.zfs.ds("pots/taken"))
    env.check()


def test_receive_onto_an_existing_dataset_fails_and_leaves_nothing(env: Env) -> None:
    base(env)
    run("zfs", "create", env.zfs.ds("pots/taken"))
    with pytest.raises(CommandFailed):
        env.do([*env.zfs.clone("pots/x", "bases/b@1"), *env.zfs.copy("pots/taken", "bases/b@1")])
    assert env.zfs.ds("pots/x") not in env.zfs.datasets()
    assert env.store.get("layers", key="pots/taken") is None
    run_busy("zfs", "destroy", env.zfs.ds("pots/taken"))
    env.check()


def test_dry_run_prints_and_changes_nothing(env: Env) -> None:
    lines = Executor(Context(SubprocessRunner(), env.store), dry_run=True).run(
        "create", "pots/a", env.zfs.new("pots/a"))
    ds = env.zfs.ds("pots/a")
    assert lines == [f"zfs create {ds}", "# state: record layers key=pots/a"]
    assert ds not in env.zfs.datasets()


def test_bad_keys_and_names_are_refused(env: Env) -> None:
    for key in ("pots", "pots/../x", "pots/a@b", "/pots/a", "pots//a"):
        with pytest.raises(UsageError):
            env.zfs.new(key)
    base(env, "pots/a", ())
    with pytest.raises(UsageError):
        env.zfs.snapshot("pots/a", "x@y")
    with pytest.raises(LadleError):
        ZfsSnapshotter(env.zfs.root, env.store, "pool@snap")


# Rendering and the intent log ------------------------------------------------------------------

RENDERED: list[tuple[Step, str]] = [
    (ZfsCreate("tank/ladle", {"mountpoint": "/var/ladle/zfs", "atime": "off"}),
     "zfs create -o mountpoint=/var/ladle/zfs -o atime=off tank/ladle"),
    (ZfsCreate("tank/ladle/pots/web"), "zfs create tank/ladle/pots/web"),
    (ZfsDestroy("tank/ladle/pots/web"), "zfs destroy tank/ladle/pots/web"),
    (ZfsDestroy("tank/ladle/pots/web", recursive=True), "zfs destroy -r tank/ladle/pots/web"),
    (ZfsSnapshot("tank/ladle/pots/web@1700000000"), "zfs snapshot tank/ladle/pots/web@1700000000"),
    (ZfsDestroySnapshot("tank/ladle/pots/web@1700000000"), "zfs destroy tank/ladle/pots/web@1700000000"),
    (ZfsClone("tank/ladle/bases/b@1", "tank/ladle/pots/web"),
     "zfs clone tank/ladle/bases/b@1 tank/ladle/pots/web"),
    (ZfsClone("tank/ladle/bases/b@1", "tank/ladle/pots/web", {"atime": "off"}),
     "zfs clone -o atime=off tank/ladle/bases/b@1 tank/ladle/pots/web"),
    (ZfsRollback("tank/ladle/pots/web@1"), "zfs rollback -r tank/ladle/pots/web@1"),
    (ZfsPromote("tank/ladle/pots/web", "tank/ladle/bases/b"), "zfs promote tank/ladle/pots/web"),
    (ZfsRename("tank/ladle/pots/a", "tank/ladle/pots/b"), "zfs rename tank/ladle/pots/a tank/ladle/pots/b"),
    (ZfsSendReceive("tank/ladle/pots/a@1", "tank/ladle/pots/b"),
     "zfs send tank/ladle/pots/a@1 | zfs receive tank/ladle/pots/b"),
    (ZfsSet("tank/ladle", "mountpoint", "/opt/ladle/zfs", "/x"), "zfs set mountpoint=/opt/ladle/zfs tank/ladle"),
    (ZfsInherit("tank/ladle/pots/a", "mountpoint"), "zfs inherit mountpoint tank/ladle/pots/a"),
    (ZfsMount("tank/ladle/pots/a"), "zfs mount tank/ladle/pots/a"),
    (ZfsUnmount("tank/ladle/pots/a"), "zfs unmount tank/ladle/pots/a"),
    (ZfsCreate("tank/my pots"), "zfs create 'tank/my pots'"),
]


@pytest.mark.parametrize(("step", "line"), RENDERED, ids=[type(s).__name__ for s, _ in RENDERED])
def test_render(step: Step, line: str) -> None:
    assert step.render() == [line]
    assert Step.from_json(step.to_json()) == step


def test_inverses() -> None:
    assert ZfsCreate("p/a").inverse() == [ZfsDestroy("p/a", recursive=True)]
    assert ZfsClone("p/b@1", "p/a").inverse() == [ZfsDestroy("p/a", recursive=True)]
    assert ZfsSendReceive("p/b@1", "p/a").inverse() == [ZfsDestroy("p/a", recursive=True)]
    assert ZfsSnapshot("p/a@1").inverse() == [ZfsDestroySnapshot("p/a@1")]
    assert ZfsRename("p/a", "p/b").inverse() == [ZfsRename("p/b", "p/a")]
    assert ZfsPromote("p/a", "p/b").inverse() == [ZfsPromote("p/b", "p/a")]
    assert ZfsSet("p/a", "atime", "off", "on").inverse() == [ZfsSet("p/a", "atime", "on", "off")]
    assert ZfsSet("p/a", "atime", "off").inverse() == [ZfsInherit("p/a", "atime")]
    assert ZfsMount("p/a").inverse() == [ZfsUnmount("p/a")]
    assert ZfsUnmount("p/a").inverse() == [ZfsMount("p/a")]
    for final in (ZfsDestroy("p/a"), ZfsDestroySnapshot("p/a@1"), ZfsRollback("p/a@1")):
        assert final.inverse() == []


def test_snapshot_steps_refuse_file_systems() -> None:
    for make in (ZfsSnapshot, ZfsDestroySnapshot, ZfsRollback):
        with pytest.raises(ValueError):
            make("tank/ladle/pots/web")
    with pytest.raises(ValueError):
        ZfsDestroy("tank/ladle/pots/web@1")
