"""Plans: failures undo what was done, in reverse; a killed command is repaired afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ladle.errors import CommandFailed
from ladle.plan.executor import Executor
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Cmd, Context, MakeDir, Step, UnknownStep, WriteFile
from ladle.state.steps import put
from ladle.state.store import Store


def ctx(tmp_path: Path) -> Context:
    return Context(SubprocessRunner(), Store(str(tmp_path / "ladle.db")))


def test_a_failing_step_undoes_the_earlier_ones_and_leaves_no_trace(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    d = tmp_path / "made"
    steps: list[Step] = [MakeDir(str(d)), WriteFile(str(d / "f"), "hello\n"),
                         put("settings", {"key": "k"}, {"key": "k", "value": "v"}, None), Cmd(["false"])]
    with pytest.raises(CommandFailed, match="false failed"):
        Executor(c).run("test", "global", steps)
    assert not d.exists()
    assert c.store is not None and c.store.setting("k") is None
    assert c.store.all("ops") == []


def test_a_failed_plan_whose_undo_fails_is_left_for_gc(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    with pytest.raises(CommandFailed, match="false failed"):
        Executor(c).run("test", "global", [Cmd(["true"], undo=[["false"]]), Cmd(["false"])])
    assert c.store is not None
    [op] = c.store.all("ops")
    assert op["state"] == "failed" and op["error"].startswith("false failed: exit code 1; could not undo false")


def test_a_successful_plan_leaves_no_intent_log(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    Executor(c).run("test", "global", [MakeDir(str(tmp_path / "a"))])
    assert (tmp_path / "a").is_dir()
    assert c.store is not None and c.store.all("ops") == []


def test_dry_run_prints_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    lines = Executor(ctx(tmp_path), dry_run=True).run("t", "g", [MakeDir(str(tmp_path / "a"), 0o700),
                                                                 Cmd(["zfs", "create", "p/x y"])])
    assert lines == [f"mkdir -m 700 {tmp_path / 'a'}", "zfs create 'p/x y'"]
    assert not (tmp_path / "a").exists()


def test_steps_survive_the_intent_log_round_trip() -> None:
    step = WriteFile("/x", "a\nb", 0o600)
    assert Step.from_json(step.to_json()) == step


@pytest.mark.parametrize("on_crash", ["undo", "finish"])
def test_a_killed_plan_is_rolled_back_or_finished_by_recovery(tmp_path: Path, on_crash: str) -> None:
    """SIGKILL in the middle of a plan; the next command's recovery repairs it."""
    a, b, mark = tmp_path / "a", tmp_path / "b", tmp_path / "recovering"
    script = textwrap.dedent(f"""
        from ladle.plan.executor import Executor
        from ladle.plan.runner import SubprocessRunner
        from ladle.plan.steps import Cmd, Context, MakeDir
        from ladle.state.store import Store
        c = Context(SubprocessRunner(), Store({str(tmp_path / 'ladle.db')!r}))
        Executor(c).run("t", "global", [MakeDir({str(a)!r}), Cmd(["sh", "-c", "test -e {mark!s} || kill -9 $PPID"]),
                                        MakeDir({str(b)!r})], on_crash={on_crash!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -9 and a.is_dir() and not b.exists()

    from ladle.config import Config
    from ladle.engine.core import Engine
    from ladle.engine.gc import recover
    eng = Engine(Config(host="linux", root=str(tmp_path)))
    (tmp_path / "locks").mkdir()
    mark.touch()  # finishing re-runs the step that was running: let it succeed this time
    report = recover(eng)
    assert len(report) == 1
    if on_crash == "undo":
        assert "rolled back" in report[0] and not a.exists() and not b.exists()
    else:
        assert "finished" in report[0] and a.is_dir() and b.is_dir()
    assert eng.store.all("ops") == [] and recover(eng) == []


def test_an_unknown_step_sets_its_operation_aside_with_one_line(tmp_path: Path) -> None:
    """An intent log written by another ladle (or for another host) never wedges later commands."""
    from ladle import Client

    client = Client(str(tmp_path / "root"))
    client.init()
    store = client._store()
    store.op_begin("frobnicate", "pot:web", ['{"kind": "ladle.nosuch:Step", "args": {}}'], "undo")
    store.db.execute("UPDATE ops SET pid=1, pid_start=0")  # its process is gone
    why = "step ladle.nosuch:Step: cannot load ladle.nosuch here (ModuleNotFoundError: No module named 'ladle.nosuch')"
    listed = f"failed frobnicate of pot:web: {why} (`ladle gc --force` drops it)"
    assert client.gc().message == f"could not repair interrupted frobnicate of pot:web: {why}\n{listed}"
    assert client.gc().message == listed  # set aside once, then only listed
    assert client.pots() == []
    assert client.gc(force=True).message == "dropped failed frobnicate of pot:web"
    assert client.gc().message == ""


def test_an_old_subject_with_a_slash_neither_crashes_recovery_nor_wedges_commands(tmp_path: Path) -> None:
    """Issue 6 item 7: a subject 'pots/web' made recovery open locks/pots/web.lock and crash."""
    from ladle import Client

    client = Client(str(tmp_path / "root"))
    client.init()
    store = client._store()
    store.op_begin("snapshot", "pots/web", [], "undo")
    store.db.execute("UPDATE ops SET pid=1, pid_start=0")
    assert client.gc().message == "finished interrupted snapshot of pots/web"
    assert client.pots() == []
    client.close()


def test_steps_name_their_module_and_rebuild_from_it(tmp_path: Path) -> None:
    step = MakeDir(str(tmp_path / "x"))
    assert step.kind() == "ladle.plan.steps:MakeDir"
    with pytest.raises(UnknownStep, match="unknown step 'NoSuchStep'"):
        Step.from_json('{"kind": "NoSuchStep", "args": {}}')
    with pytest.raises(UnknownStep, match="does not match this ladle"):
        Step.from_json('{"kind": "ladle.plan.steps:MakeDir", "args": {"nope": 1}}')
    with pytest.raises(UnknownStep, match="unreadable step"):
        Step.from_json("not json")


def test_a_5000_deep_tree_is_removed_without_recursion_and_without_following_links(tmp_path: Path) -> None:
    """Issue 6 item 9: shutil.rmtree raised RecursionError on such a tree (Python 3.11)."""
    from ladle.plan.steps import RemoveTree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(5000):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.symlink(str(outside), "link", dir_fd=fd)
    os.close(fd)
    RemoveTree(str(top)).apply(None)  # type: ignore[arg-type]
    assert not top.exists() and (outside / "keep").read_text() == "x"
