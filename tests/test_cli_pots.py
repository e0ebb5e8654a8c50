"""Bases and pots through the real CLI: create, list, inspect, destroy, and bad input."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Ladle


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


def state(cli: Ladle) -> tuple[str, str, list[str]]:
    """What a user can see of the state, to check that a refused command changed nothing."""
    storage = sorted(str(p.relative_to(cli.root)) for p in (cli.root / "storage").rglob("*")
                     if p.parent.name in ("bases", "pots", "fscomps"))
    return cli("ls", "--json").stdout, cli("bases", "--json").stdout, storage


def test_uninitialised_root_is_a_clear_error(tmp_path: Path) -> None:
    line = Ladle(tmp_path / "none").fails("ls")
    assert "not initialised" in line and "ladle init" in line


def test_init_is_idempotent_and_will_not_switch_backends(ladle: Ladle) -> None:
    ladle("init")
    assert "already initialised with dir storage" in ladle.fails("init", "--storage", "zfs", "--dataset", "p/x")


def test_busybox_base_and_a_pot_on_it(bb: Ladle) -> None:
    bases = json.loads(bb("bases", "--json").stdout)
    assert [(b["name"], b["release"]) for b in bases] == [("busybox", "busybox")]
    bb("create", "-p", "web", "-b", "busybox", "-c", "httpd -f")
    [pot] = json.loads(bb("ls", "--json").stdout)
    assert pot == {"name": "web", "base": "busybox", "type": "multi", "level": 1, "network": "none",
                   "status": "stopped", "addresses": [], "ports": [], "health": None}
    info = json.loads(bb("info", "-p", "web", "--json").stdout)
    assert info["cmd"] == "httpd -f" and info["persistent"] and info["storage"]["parent"].startswith("bases/busybox@")
    assert "web" in bb("ls").stdout and bb("info", "web").stdout.startswith("name:")


def test_levels_follow_pot(bb: Ladle, tmp_path: Path) -> None:
    """level 1 -P copies its reference's latest snapshot; level 2 is a layer on that snapshot (so
    later changes to the reference do not reach it); single owns a tree."""
    f = tmp_path / "f"
    f.write_text("v1\n")
    bb("create", "-p", "l1", "-b", "busybox")
    bb("copy-in", "-p", "l1", "-s", str(f), "-d", "/data/f", "-c")
    before = state(bb)
    assert "pot l1 has no snapshot: take one with 'ladle snapshot -p l1'" in bb.fails(
        "create", "-p", "l2", "-b", "busybox", "-l", "2", "-P", "l1")
    assert state(bb) == before
    bb("snapshot", "-p", "l1", "-n", "early")
    bb("snapshot", "-p", "l1", "-n", "s1")
    bb("create", "-p", "copy", "-b", "busybox", "-P", "l1")
    bb("create", "-p", "l2", "-b", "busybox", "-l", "2", "-P", "l1")
    bb("create", "-p", "s0", "-t", "single", "-b", "busybox")
    bb("create", "-p", "m0", "-b", "busybox", "-l", "0")
    f.write_text("v2\n")
    bb("copy-in", "-p", "l1", "-s", str(f), "-d", "/data/f")
    out = tmp_path / "out"
    for pot, want in (("copy", "v1\n"), ("l2", "v1\n"), ("l1", "v2\n")):
        (out / pot).mkdir(parents=True)
        bb("copy-out", "-p", pot, "-s", "/data/f", "-d", str(out / pot))
        assert (out / pot / "f").read_text() == want, pot
    before = state(bb)
    assert "snapshot pots/l1@s1 is used by pots/l2: it cannot be removed" in bb.fails(
        "purge-snapshots", "-p", "l1", "-a")
    assert "snapshot pots/l1@s1 is used by pots/l2: rolling back to early would destroy it" in bb.fails(
        "rollback", "-p", "l1", "-s", "early")
    assert state(bb) == before and bb("snapshots", "-p", "l1").stdout.split() == ["early", "s1"]
    levels = {p["name"]: (p["type"], p["level"]) for p in json.loads(bb("ls", "--json").stdout)}
    assert levels == {"l1": ("multi", 1), "copy": ("multi", 1), "l2": ("multi", 2), "s0": ("single", 0),
                      "m0": ("multi", 0)}


def test_destroy_refuses_to_orphan_dependants(bb: Ladle) -> None:
    bb("create", "-p", "l1", "-b", "busybox")
    bb("snapshot", "-p", "l1")
    bb("create", "-p", "l2", "-b", "busybox", "-l", "2", "-P", "l1")
    before = state(bb)
    assert "used by l2" in bb.fails("destroy", "-p", "l1")
    assert state(bb) == before
    assert "used by pots" in bb.fails("destroy", "-b", "busybox")
    bb("destroy", "-p", "l1", "-r")
    assert json.loads(bb("ls", "--json").stdout) == []
    bb("destroy", "-b", "busybox")
    assert not list((bb.root / "storage" / "bases").iterdir())


@pytest.mark.parametrize("bad", ["../x", "", "a b", "x" * 64, "a.b", "-x", "--p=-x", "1234"])
def test_bad_pot_names_are_refused_and_change_nothing(bb: Ladle, bad: str) -> None:
    before = state(bb)
    args = [f"-p{bad[3:]}"] if bad.startswith("--p=") else ["-p", bad]
    line = bb.fails("create", *args, "-b", "busybox")
    # '-p -x' is an option where a value should be: the parser says so, naming -p
    assert ("argument -p: expected one argument" if bad == "-x" else "pot name") in line
    assert state(bb) == before


def test_unknown_and_existing_names(bb: Ladle) -> None:
    assert "base nosuch does not exist" in bb.fails("create", "-p", "a", "-b", "nosuch")
    assert "pot nosuch does not exist" in bb.fails("info", "-p", "nosuch")
    assert "pot nosuch does not exist" in bb.fails("start", "nosuch")
    bb("create", "-p", "a", "-b", "busybox")
    before = state(bb)
    assert "pot a already exists" in bb.fails("create", "-p", "a", "-b", "busybox")
    assert "base busybox already exists" in bb.fails("create-base", "-r", "busybox")
    assert state(bb) == before


def test_bad_option_values_are_one_line(bb: Ladle) -> None:
    assert "level" in bb.fails("create", "-p", "a", "-b", "busybox", "-t", "single", "-l", "1")
    assert "-P" in bb.fails("create", "-p", "a", "-b", "busybox", "-l", "2")
    assert "argument -l" in bb.fails("create", "-p", "a", "-b", "busybox", "-l", "7")
    assert bb.fails("frobnicate") == "ladle: unknown verb 'frobnicate' (see ladle --help)"


@pytest.mark.parametrize("mountpoint", ["relative/path", "/", "/a/../../etc", "/a b"])
def test_mountpoints_outside_or_invalid_are_refused(bb: Ladle, tmp_path: Path, mountpoint: str) -> None:
    bb("create", "-p", "a", "-b", "busybox")
    bb("create-fscomp", "-f", "data")
    before = bb("info", "-p", "a", "--json").stdout
    assert "mountpoint" in bb.fails("mount-in", "-p", "a", "-d", str(tmp_path), "-m", mountpoint)
    assert "mountpoint" in bb.fails("add-fscomp", "-p", "a", "-f", "data", "-m", mountpoint)
    assert bb("info", "-p", "a", "--json").stdout == before


def test_copy_paths_may_have_spaces(bb: Ladle, tmp_path: Path) -> None:
    """Only mountpoints are kept free of spaces (they end up in fstab lines); a file to copy is any name."""
    f = tmp_path / "a file"
    f.write_text("spaced\n")
    bb("create", "-p", "a", "-b", "busybox")
    bb("copy-in", "-p", "a", "-s", str(f), "-d", "/my files/a file", "-c")
    out = tmp_path / "out dir"
    out.mkdir()
    bb("copy-out", "-p", "a", "-s", "/my files/a file", "-d", str(out))
    assert (out / "a file").read_text() == "spaced\n"


def _tarball(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """Members are (name, file content, or None with a symlink target)."""
    with tarfile.open(path, "w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


def test_from_tar_imports_a_root_file_system(ladle: Ladle, tmp_path: Path) -> None:
    tar = _tarball(tmp_path / "ok.tar", [("etc/os-release", b"ID=test\n", None), ("bin/sh", None, "busybox")])
    ladle("create-base", "-r", "test", "-b", "imported", "--from-tar", str(tar))
    tree = ladle.root / "storage" / "bases" / "imported" / "fs"
    assert (tree / "etc" / "os-release").read_text() == "ID=test\n"
    assert os.readlink(tree / "bin" / "sh") == "busybox"


@pytest.mark.parametrize("members", [
    [("ok", b"x", None), ("../evil", b"x", None)],
    [("/etc/evil", b"x", None)],
    [("link", None, "/etc"), ("link/evil", b"x", None)],
    [("link", None, "../../.."), ("link/evil", b"x", None)],
])
def test_unsafe_tarballs_are_refused_and_leave_nothing(ladle: Ladle, tmp_path: Path,
                                                       members: list[tuple[str, bytes | None, str | None]]) -> None:
    tar = _tarball(tmp_path / "bad.tar", members)
    before = state(ladle)
    line = ladle.fails("create-base", "-r", "x", "-b", "bad", "--from-tar", str(tar))
    assert "unsafe" in line or "escape" in line
    assert state(ladle) == before
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_rename_moves_the_pot_and_its_references(bb: Ladle) -> None:
    bb("create", "-p", "old", "-b", "busybox")
    bb("snapshot", "-p", "old")
    bb("create", "-p", "child", "-b", "busybox", "-l", "2", "-P", "old")
    bb("rename", "-p", "old", "-n", "new")
    pots = {p["name"] for p in json.loads(bb("ls", "--json").stdout)}
    assert pots == {"new", "child"}
    child = json.loads(bb("info", "-p", "child", "--json").stdout)
    assert child["potbase"] == "new" and child["storage"]["parent"].startswith("pots/new@")
    assert "pot new already exists" in bb.fails("rename", "-p", "child", "-n", "new")


def test_dry_run_prints_the_steps_and_changes_nothing(bb: Ladle) -> None:
    before = state(bb)
    out = bb("--dry-run", "create", "-p", "web", "-b", "busybox").stdout
    assert f"mkdir -m 755 {bb.root}/storage/pots/web/fs" in out and "# state: record pots name=web" in out
    assert state(bb) == before
    bb("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    assert "unshare" in bb("start", "--dry-run", "web").stdout
    assert json.loads(bb("info", "-p", "web", "--json").stdout)["status"] == "stopped"
    assert "rm -rf --" in bb("destroy", "-p", "web", "--dry-run").stdout
    assert bb("exec", "--dry-run", "web", "--", "ps").stdout.splitlines()[2].startswith("nsenter --target")
    assert "web" in bb("ls").stdout


def test_the_fast_parser_knows_every_verb() -> None:
    """`ladle VERB` builds only VERB's parser, found by name in cli.app.VERBS: that list must be
    exactly the verbs the modules register (with their aliases)."""
    import argparse

    from ladle.cli import app

    top = app._parser([])
    registered = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert set(registered.choices) == app.VERBS
