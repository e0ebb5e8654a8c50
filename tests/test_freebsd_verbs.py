"""Every verb, planned for FreeBSD through the whole engine, with the host faked at the command
boundary only (a recording runner, and tests/fakes/jexec for the real monitor that runs the pots'
commands): the exact commands are pinned in a golden file and checked against the man pages."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ladle.engine import bases, fscomps, gc, lifecycle, pots, run, setup, show, snapshots
from ladle.engine.core import Engine
from ladle.engine.potnet import Request
from ladle.errors import UsageError
from ladle.state.store import Store
from ladle.storage import open_backend
from tests.freebsd_engine import NOT_RUNNING, freebsd_engine, offline_cli
from tests.freebsd_syntax import check_line, check_rendering, untoken
from tests.recording_runner import RecordingRunner

GOLDEN = Path(__file__).parent / "golden" / "freebsd" / "verbs.txt"
ROOT = "/var/db/ladle"
INHERIT, NONE = Request(type="inherit"), Request(type="none")


class Transcribing(RecordingRunner):
    """Keeps commands, pipelines and spawned processes in one ordered transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def run(self, argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
        self.log.append(shlex.join(argv) + ("  # with stdin" if input else ""))
        return super().run(argv, input=input, check=check)

    def pipeline(self, argvs: list[list[str]]) -> None:
        self.log.append(" | ".join(shlex.join(a) for a in argvs))
        super().pipeline(argvs)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Transcribing]]:
    runner = Transcribing()
    with freebsd_engine(tmp_path, monkeypatch, runner, runner.log) as eng:
        yield eng, runner


def transcript(eng: Engine, runner: Transcribing, tmp_path: Path) -> str:
    """Run the verbs in order; return '## verb' sections with the commands each one ran."""
    motd = tmp_path / "motd"
    motd.write_text("hi\n")
    outdir = tmp_path / "out"
    outdir.mkdir()
    tree = tmp_path / "zfs" / "pots" / "web"  # what `zfs clone` would mount: base.txz's etc, freebsd-version
    for sub in ("bin", "etc"):
        (tree / sub).mkdir(parents=True)
    (tree / "bin" / "freebsd-version").write_text('#!/bin/sh\nUSERLAND_VERSION="14.2-RELEASE"\n')
    verbs: list[tuple[str, Callable[[], object]]] = [
        ("init --storage zfs --dataset zroot/ladle", lambda: setup.init(eng, "zfs", "zroot/ladle")),
        ("create-base -r 14.2", lambda: bases.create_base(eng, "14.2", None, None)),
        ("create -p web -b 14.2 -N inherit -c nginx", lambda: pots.create(
            eng, "web", "14.2", "multi", None, None, "nginx", INHERIT)),
        ("create -p solo -t single -b 14.2", lambda: pots.create(eng, "solo", "14.2", "single", None, None,
                                                                 None, NONE)),
        ("snapshot -p web -n s1", lambda: snapshots.snapshot(eng, "web", None, "s1")),
        ("create -p l2 -l 2 -P web", lambda: pots.create(eng, "l2", None, "multi", 2, "web", None, NONE)),
        ("info -p l2", lambda: show.info(eng, "l2")),
        ("create -p copy -P web", lambda: pots.create(eng, "copy", None, "multi", 1, "web", None, NONE)),
        ("create-fscomp -f data", lambda: fscomps.create_fscomp(eng, "data")),
        ("add-fscomp -p web -f data -m /data --ro", lambda: fscomps.add_mount(eng, "web", "fscomp", "data",
                                                                              "/data", True)),
        ("mount-in -p web -d /tmp -m /www", lambda: fscomps.add_mount(eng, "web", "dir", "/tmp", "/www", False)),
        ("set-attr -p web -A sysvipc -V inherit", lambda: pots.set_attr(eng, "web", "sysvipc", "inherit")),
        ("set-env -p web -E A=1", lambda: pots.update(eng, "web", "set-env", env={"A": "1"})),
        ("copy-in -p web -s motd -d /etc/motd", lambda: fscomps.copy(eng, "web", "in", str(motd), "/etc/motd",
                                                                      False)),
        ("copy-out -p web -s /etc/motd -d out", lambda: fscomps.copy(eng, "web", "out", str(outdir), "/etc/motd",
                                                                      False)),
        ("start web", lambda: lifecycle.start(eng, "web")),
        ("exec web -- true", lambda: running(runner, lambda: lifecycle.exec_(eng, "web", ["true"], False, {}))),
        ("stop web", lambda: running(runner, lambda: lifecycle.stop(eng, "web"))),
        ("rollback -p web", lambda: snapshots.rollback(eng, "web", None, None)),
        ("clone -p web2 -P web -s s1", lambda: pots.clone(eng, "web2", "web", "s1")),
        ("promote -p web2", lambda: snapshots.promote(eng, "web2", None)),
        ("rename -p copy -n copy2", lambda: pots.rename(eng, "copy", "copy2")),
        ("snapshot -f data -n f1", lambda: snapshots.snapshot(eng, None, "data", "f1")),
        ("clone-fscomp -F data -f data2", lambda: fscomps.clone_fscomp(eng, "data", "data2", None)),
        ("purge-snapshots -p copy2 -a", lambda: snapshots.purge(eng, "copy2", None, 1, True)),
        ("gc (with a dataset no state knows of)", lambda: orphaned(runner, lambda: gc.gc(eng))),
        ("destroy -p l2", lambda: pots.destroy(eng, "l2", False, False)),
        ("destroy -b 14.2 -r", lambda: bases.destroy_base(eng, "14.2", True, False)),
        ("destroy -f data2", lambda: fscomps.destroy_fscomp(eng, "data2")),
        ("destroy -f data", lambda: fscomps.destroy_fscomp(eng, "data")),
    ]
    out = []
    for title, verb in verbs:
        first = len(runner.log)
        verb()
        lines = runner.log[first:]
        out.append(f"## {title}\n" + "".join(f"{line}\n" for line in lines))
    text = "\n".join(out).replace(str(tmp_path), ROOT)
    return untoken(text)


def running(runner: Transcribing, verb: Callable[[], object]) -> object:
    """While `verb` runs, the jail exists."""
    runner.answer(r"^jls ", "7\n")
    try:
        return verb()
    finally:
        runner.answer(r"^jls ", NOT_RUNNING)


def orphaned(runner: Transcribing, verb: Callable[[], object]) -> object:
    """While `verb` runs, ZFS has a pot's dataset that no state row knows of."""
    runner.answer(r"^zfs list -H -o name,origin ", "zroot/ladle/pots/ghost\t-\n")
    try:
        return verb()
    finally:
        runner.answer(r"^zfs list -H -o name,origin ", "")


class WatchedStore(Store):
    """A store that notes the modules that read the snapshotter's tables (layers, snapshots)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.readers: set[str] = set()
        self.db.set_trace_callback(self._note)

    def _note(self, sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT") and re.search(r"\b(layers|snapshots)\b", sql):
            frame = sys._getframe(1)  # the code that called execute: the store, or past it
            while frame.f_back is not None and frame.f_globals["__name__"].startswith("ladle.state"):
                frame = frame.f_back
            self.readers.add(frame.f_globals["__name__"])


def test_the_engine_asks_the_snapshotter_and_never_reads_its_tables(engine: tuple[Engine, Transcribing],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    eng, runner = engine
    monkeypatch.setattr(setup, "Store", WatchedStore)  # the store that init opens, and every verb uses
    transcript(eng, runner, tmp_path)
    assert isinstance(eng.store, WatchedStore)
    assert {name.rpartition(".")[0] for name in eng.store.readers} == {"ladle.storage"}, eng.store.readers


def test_every_verb_renders_its_exact_freebsd_commands(engine: tuple[Engine, Transcribing],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, runner = engine
    text = transcript(eng, runner, tmp_path)
    if os.environ.get("LADLE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_every_rendered_command_follows_the_man_pages(engine: tuple[Engine, Transcribing],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, runner = engine
    transcript(eng, runner, tmp_path)
    lines = [line.split("  #")[0] for line in runner.log]
    problems = [f"{line}: {p}" for line in lines for part in line.split(" | ") for p in check_line(part)]
    assert problems == []


def test_the_stack_setting_reaches_the_jail(engine: tuple[Engine, Transcribing]) -> None:
    eng, _ = engine
    eng.cfg.stack = "ipv6"
    setup.init(eng, "zfs", "zroot/ladle")
    bases.create_base(eng, "14.2", None, None)
    pots.create(eng, "web", "14.2", "multi", None, None, "nginx", INHERIT)
    plan = eng.host.start_plan(lifecycle.spec(eng, eng.pot("web")))
    jail = next(line for step in plan for line in step.render() if line.startswith("jail -c"))
    assert jail.endswith(" exec.clean ip4=disable ip6=inherit")


def test_dir_storage_refuses_layered_pots_at_create_and_run(engine: tuple[Engine, Transcribing],
                                                              tmp_path: Path) -> None:
    """Overlay layers cannot be stacked with nullfs: said at create, with the way out, and nothing
    is made (not at the pot's first start)."""
    eng, runner = engine
    setup.init(eng, "dir", None)
    bases.create_base(eng, "14.2", None, None)
    before = len(runner.log)
    for verb in (lambda: pots.create(eng, "web", "14.2", "multi", None, None, None, INHERIT),
                 lambda: pots.create(eng, "web", "14.2", "multi", 2, "solo", None, INHERIT),
                 lambda: run.run(eng, "14.2", ["true"], "web", True, NONE, None)):
        with pytest.raises(UsageError) as refused:
            verb()
        assert str(refused.value) == ("on FreeBSD a multi level 1 or 2 pot needs zfs storage: ladle init --storage"
                                      " zfs --dataset POOL/PATH (or create it with -t single)")
    assert runner.log[before:] == []
    assert eng.store.all("pots") == [] and not (tmp_path / "storage" / "pots" / "web").exists()
    pots.create(eng, "solo", "14.2", "single", None, None, None, INHERIT)
    pots.create(eng, "patch", "14.2", "multi", 0, None, None, INHERIT)  # the base itself: a full tree
    assert [p["name"] for p in eng.store.all("pots", order="name")] == ["patch", "solo"]


def test_dir_storage_clears_file_flags_before_removing_a_tree(engine: tuple[Engine, Transcribing],
                                                              tmp_path: Path) -> None:
    """base.txz's schg files cannot be removed until the flag is cleared: rollback and destroy run
    chflags on each tree they remove, while it is still there, and rm after it."""
    eng, runner = engine
    setup.init(eng, "dir", None)
    bases.create_base(eng, "14.2", None, None)
    pots.create(eng, "solo", "14.2", "single", None, None, None, INHERIT)
    snapshots.snapshot(eng, "solo", None, "s1")
    layer = tmp_path / "storage" / "pots" / "solo"
    for made_by_cp in (layer / "fs", layer / "snaps" / "s1"):  # the recording runner copies nothing
        made_by_cp.mkdir()
    seen: list[tuple[str, bool]] = []
    record = runner.run

    def watching(argv: list[str], **kw: Any) -> str:
        if argv[0] == "chflags":
            seen.append((shlex.join(argv), os.path.isdir(argv[-1])))
        return record(argv, **kw)

    runner.run = watching  # type: ignore[method-assign]
    snapshots.rollback(eng, "solo", None, None)
    assert seen == [(f"chflags -R -x noschg {layer}/fs.rollback", True)]
    assert not (layer / "fs.rollback").exists()
    pots.destroy(eng, "solo", False, False)
    assert seen[1:] == [(f"chflags -R -x noschg {layer}", True)]
    assert not layer.exists()
    plan = [line for step in eng.snap.remove("bases/14.2") for line in step.render()]
    base = tmp_path / "storage" / "bases" / "14.2"
    assert plan[-2:] == [f"chflags -R -x noschg {base}", f"rm -rf -- {base}"]
    assert check_line(plan[-2]) == []
    linux = open_backend("dir", str(tmp_path), eng.store, None, runner)
    assert not any(line.startswith("chflags") for step in linux.remove("bases/14.2") for line in step.render())


def test_a_dry_run_from_another_host_runs_nothing_and_trusts_the_run_records(
        engine: tuple[Engine, Transcribing], tmp_path: Path) -> None:
    eng, _ = engine
    setup.init(eng, "zfs", "zroot/ladle")
    bases.create_base(eng, "14.2", None, None)
    pots.create(eng, "web", "14.2", "multi", None, None, "nginx", INHERIT)
    fscomps.create_fscomp(eng, "data")
    eng.store.put("runs", {"pot": "web"}, {"pot": "web", "state": "running", "main_pid": 4242, "main_start": 1})
    cli = offline_cli(tmp_path, tmp_path)
    listing = cli("ls")
    assert listing.returncode == 0 and listing.stdout.splitlines()[1].split()[:2] == ["web", "running"]
    jail = f"{tmp_path}/zfs/pots/web"
    for args, wanted in [
        (("stop", "web"), f"umount {jail}/tmp"),
        (("destroy", "-p", "web", "-F"), "zfs destroy -r zroot/ladle/pots/web"),
        (("add-fscomp", "-p", "web", "-f", "data", "-m", "/data"),  # at the next start: nothing mounted now
         "# state: record pot_mounts pot=web mountpoint=/data"),
        (("create-base", "-r", "13.5"), f"fetch -o {tmp_path}/cache/13.5-RELEASE/base.txz"
         " https://download.freebsd.org/releases/amd64/amd64/13.5-RELEASE/base.txz"),
    ]:
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert wanted in lines, proc.stdout
        assert check_rendering([x for x in lines if not x.startswith("mkdir -m")]) == []
        if args[0] in ("stop", "destroy"):
            assert "jail -f - -q -r web <<'EOF'" in lines  # planned as running: it is stopped first
        if args[0] == "add-fscomp":
            assert not [x for x in lines if x.startswith("mount")]
    assert not (tmp_path / "trapped.log").exists()
    assert eng.store.get("runs", pot="web")["state"] == "running" and eng.store.get("pots", name="web")
    start = cli("start", "web")
    assert start.returncode != 0 and start.stderr.strip() == "ladle: pot web is already running"


def test_a_dry_run_init_for_another_host_asks_no_zfs_and_plans_every_dataset(tmp_path: Path) -> None:
    proc = offline_cli(tmp_path, tmp_path / "fresh")("init", "--storage", "zfs", "--dataset", "zroot/ladle")
    assert proc.returncode == 0, proc.stderr
    assert (f"zfs create -o mountpoint={tmp_path}/fresh/zfs -o atime=off -o ladle:root={tmp_path}/fresh"
            " zroot/ladle") in proc.stdout.splitlines()
    assert "zfs create zroot/ladle/pots" in proc.stdout.splitlines()
    assert not (tmp_path / "trapped.log").exists() and not (tmp_path / "fresh").exists()


def test_a_layered_pot_on_dir_storage_is_refused_in_one_line_from_the_cli(engine: tuple[Engine, Transcribing],
                                                                         tmp_path: Path) -> None:
    eng, _ = engine
    setup.init(eng, "dir", None)
    bases.create_base(eng, "14.2", None, None)
    proc = offline_cli(tmp_path, tmp_path)("create", "-p", "web", "-b", "14.2")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["ladle: on FreeBSD a multi level 1 or 2 pot needs zfs storage: ladle init"
                                        " --storage zfs --dataset POOL/PATH (or create it with -t single)"]


def test_dry_run_from_linux_prints_the_same_commands(tmp_path: Path) -> None:
    """`ladle --host freebsd --dry-run` on a Linux host prints and changes nothing."""
    cli = [sys.executable, "-m", "ladle", "--root", str(tmp_path / "r"), "--host", "freebsd", "--dry-run"]
    proc = subprocess.run([*cli, "init", "--storage", "zfs", "--dataset", "zroot/ladle"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"zfs create -o mountpoint={tmp_path}/r/zfs -o atime=off -o ladle:root={tmp_path}/r zroot/ladle" in lines
    assert not (tmp_path / "r").exists()
    assert all(not check_line(line) for line in lines if not line.startswith(("#", "mkdir -m")))
    refused = subprocess.run([*cli[:7], "init"], capture_output=True, text=True)
    assert refused.returncode != 0 and "needs --dry-run" in refused.stderr


def test_no_host_directory_is_mounted_into_a_running_jail(engine: tuple[Engine, Transcribing]) -> None:
    """mount_nullfs follows links the jail's processes could swap in: the mount waits for the next start."""
    eng, runner = engine
    setup.init(eng, "zfs", "zroot/ladle")
    bases.create_base(eng, "14.2", None, None)
    pots.create(eng, "web", "14.2", "multi", None, None, "nginx", INHERIT)
    lifecycle.start(eng, "web")
    first = len(runner.log)
    said = running(runner, lambda: fscomps.add_mount(eng, "web", "dir", "/tmp", "/www", False))
    assert said == ("/tmp will be mounted at /www in pot web from its next start"
                    " (freebsd does not mount into a running pot)")
    assert not [line for line in runner.log[first:] if line.startswith(("mount", "mkdir"))]
    running(runner, lambda: lifecycle.stop(eng, "web"))
    first = len(runner.log)
    lifecycle.start(eng, "web")
    assert any(line.startswith("mount_nullfs /tmp ") and line.endswith("/www") for line in runner.log[first:])
    running(runner, lambda: lifecycle.stop(eng, "web"))
