"""Fault injection: every mutating storage verb killed after each of its steps, on both backends.

For each verb the command is run with LADLE_FAULT=VERB:N for N = 0, 1, ... until it is no longer
killed (N reached the plan's length). After each kill, `gc` must repair it without a failure, the
data must be one whole version (the old or the new, checked by content), and the verb run again
must work. The leak check of conftest then asserts no process, mount or dataset is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import LADLE, Ladle
from tests.test_cli_storage import get, put, store  # noqa: F401 - the two-backend fixture

MAX_STEPS = 40


def attempt(cli: Ladle, verb: str, step: int, *args: str) -> bool:
    """Run the verb killed after `step`; True if it was killed, False if it finished first."""
    proc = subprocess.run([*LADLE, "--root", str(cli.root), *args], capture_output=True, text=True,
                          env={**os.environ, "LADLE_FAULT": f"{verb}:{step}"})
    if proc.returncode == 0:
        return False
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return True


def repaired(cli: Ladle) -> None:
    report = cli("gc")
    assert "could not" not in report.stdout + report.stderr and "failed" not in report.stdout, report
    assert "nothing to clean up" in cli("gc").stdout  # nothing left over after one gc


def each_step(cli: Ladle, verb: str, args: list[str], check: Callable[[], None],
              reset: Callable[[], None]) -> int:
    """Kill `verb` after every step; returns how many steps its plan has."""
    for step in range(MAX_STEPS):
        killed = attempt(cli, verb, step, *args)
        repaired(cli)
        check()
        if not killed:
            return step
        reset()
    raise AssertionError(f"{verb} was still killed after {MAX_STEPS} steps")


def pots(cli: Ladle) -> set[str]:
    return {p["name"] for p in json.loads(cli("ls", "--json").stdout)}


def test_rollback_and_snapshot_of_a_pot(store: Ladle, tmp_path: Path) -> None:  # noqa: F811
    store("create", "-p", "web", "-b", "busybox")
    put(store, "web", tmp_path, "old")
    store("snapshot", "-p", "web", "-n", "s1")
    put(store, "web", tmp_path, "new")

    def rolled_or_not() -> None:
        assert get(store, "web", tmp_path) in ("old", "new")

    n = each_step(store, "rollback", ["rollback", "-p", "web", "-s", "s1"], rolled_or_not,
                  lambda: put(store, "web", tmp_path, "new"))
    assert n >= 2
    assert get(store, "web", tmp_path) == "old"

    def snapshot_whole() -> None:
        assert get(store, "web", tmp_path) == "old"

    def drop_new() -> None:
        store("purge-snapshots", "-p", "web", "-k", "1")

    each_step(store, "snapshot", ["snapshot", "-p", "web"], snapshot_whole, drop_new)
    store("rollback", "-p", "web")
    assert get(store, "web", tmp_path) == "old"


def test_purge_rename_clone_promote_destroy_of_pots(store: Ladle, tmp_path: Path) -> None:  # noqa: F811
    store("create", "-p", "web", "-b", "busybox")
    put(store, "web", tmp_path, "v1")
    store("snapshot", "-p", "web", "-n", "s1")

    def web_whole() -> None:
        assert get(store, "web", tmp_path) == "v1"

    def resnap() -> None:
        store("purge-snapshots", "-p", "web", "-a")
        store("snapshot", "-p", "web", "-n", "s1")

    each_step(store, "purge-snapshots", ["purge-snapshots", "-p", "web", "-a"], web_whole, resnap)

    def renamed_or_not() -> None:
        names = pots(store)
        assert names in ({"web"}, {"www"}), names
        assert get(store, names.pop(), tmp_path) == "v1"

    def back() -> None:
        if "www" in pots(store):
            store("rename", "-p", "www", "-n", "web")

    each_step(store, "rename", ["rename", "-p", "web", "-n", "www"], renamed_or_not, back)

    def cloned_or_not() -> None:
        names = pots(store)
        assert names <= {"web", "copy"} and "web" in names
        for name in names:
            assert get(store, name, tmp_path) == "v1"

    def uncopy() -> None:
        if "copy" in pots(store):
            store("destroy", "-p", "copy")

    each_step(store, "clone", ["clone", "-p", "copy", "-P", "web"], cloned_or_not, uncopy)
    store("clone", "-p", "copy", "-P", "web")

    def both() -> None:
        assert pots(store) == {"web", "copy"}
        assert get(store, "copy", tmp_path) == "v1" and get(store, "web", tmp_path) == "v1"

    each_step(store, "promote", ["promote", "-p", "copy"], both, lambda: None)

    def gone_or_whole() -> None:
        names = pots(store)
        assert "web" in names
        if "copy" in names:
            assert get(store, "copy", tmp_path) == "v1"

    def recreate() -> None:
        if "copy" not in pots(store):
            store("clone", "-p", "copy", "-P", "web")

    each_step(store, "destroy", ["destroy", "-p", "copy"], gone_or_whole, recreate)
    store("create", "-p", "next", "-b", "busybox")  # the next command works


def test_fscomp_verbs(store: Ladle, tmp_path: Path) -> None:  # noqa: F811
    store("create-fscomp", "-f", "data")
    [path] = [Path(f["path"]) for f in json.loads(store("fscomps", "--json").stdout) if f["name"] == "data"]
    (path / "f").write_text("old")
    store("snapshot", "-f", "data", "-n", "s1")

    def one_version() -> None:
        assert (path / "f").read_text() in ("old", "new")

    each_step(store, "rollback", ["rollback", "-f", "data", "-s", "s1"], one_version,
              lambda: (path / "f").write_text("new"))
    assert (path / "f").read_text() == "old"
    each_step(store, "purge-snapshots", ["purge-snapshots", "-f", "data", "-a"], one_version,
              lambda: store("snapshot", "-f", "data", "-n", "s1", check=False))
    each_step(store, "create-fscomp", ["create-fscomp", "-f", "more"], lambda: None,
              lambda: store("destroy", "-f", "more", check=False))
    each_step(store, "destroy-fscomp", ["destroy", "-f", "data"], lambda: None,
              lambda: store("create-fscomp", "-f", "data", check=False))
    assert "data" not in {f["name"] for f in json.loads(store("fscomps", "--json").stdout)}

