"""Fault injection: every mutating verb killed (SIGKILL) after every step of its plan, on both backends.

Each row of TABLE is one verb on one subject. For every step index N below the plan's length the
verb runs with `LADLE_FAULT=VERB:N` (the executor kills itself after step N), then:

- `ladle gc` exits 0 and names no failed repair, and a second `gc` has nothing left to do;
- the subject's data is one whole version, the old or the new (marker files checked by content);
- storage and state agree: every layer and snapshot the state knows is on storage, nothing else
  is (no dataset, directory or set-aside tree left), no operation is still open;
- no mount is left under the state root and no process of a pot that is not running;
- the next command on the subject works.

A second test per row runs the verb with the fault one step past the end and checks that it is not
killed: so the table's step counts are the plans' real lengths, and a longer plan fails the table
until its new steps are covered.

Every dir row runs in a copy of a module-wide template root that already holds the busybox base;
the ZFS rows (a representative subset: ZFS on zfs-fuse is slow) each get a fresh dataset.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ladle.cli import main as cli_main
from ladle.storage.zfs import CATEGORIES
from tests import leaks
from tests.conftest import LADLE, Ladle
from tests.zfs_pool import run_busy

MARK = "/data/mark"


@contextlib.contextmanager
def _deadline(args: tuple[str, ...], seconds: int = 60) -> Iterator[None]:
    """A command in this process that hangs (zfs-fuse has been seen to stop answering) fails its
    test instead of the whole run."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"ladle {' '.join(args)} did not finish in {seconds}s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class World:
    """One state root with the busybox base, and what a row needs to look at it."""

    def __init__(self, cli: Ladle, backend: str, tmp: Path, dataset: str = "") -> None:
        self.cli, self.backend, self.tmp, self.dataset = cli, backend, tmp, dataset
        self.hostdir = tmp / "hostdir"
        self.hostdir.mkdir(exist_ok=True)

    def __call__(self, *args: str, check: bool = True, sub: bool = False) -> subprocess.CompletedProcess[str]:
        """The CLI on this root: in this process (a subprocess costs most of a short command's
        time, and the table runs thousands), or with `sub` in its own (an attached start)."""
        if sub:
            return self.cli(*args, check=check)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _deadline(args):
            code = cli_main(["--root", str(self.cli.root), *args])
        proc = subprocess.CompletedProcess(["ladle", *args], code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"ladle {' '.join(args)} exited {code}:\n{proc.stdout}{proc.stderr}")
        return proc

    # Data ------------------------------------------------------------------------------------

    def put(self, pot: str, text: str, dest: str = MARK) -> None:
        src = self.tmp / "src"
        src.write_text(text)
        self("copy-in", "-p", pot, "-s", str(src), "-d", dest, "-c")

    def get(self, pot: str, src: str = MARK) -> str:
        out = self.tmp / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        self("copy-out", "-p", pot, "-s", src, "-d", str(out))
        return (out / Path(src).name).read_text()

    def fscomp_path(self, name: str) -> Path:
        [path] = [Path(f["path"]) for f in json.loads(self("fscomps", "--json").stdout) if f["name"] == name]
        return path

    def pots(self) -> set[str]:
        return set(self("ls", "-q").stdout.split())

    def fscomps(self) -> set[str]:
        return {f["name"] for f in json.loads(self("fscomps", "--json").stdout)}

    def bases(self) -> set[str]:
        return {b["name"] for b in json.loads(self("bases", "--json").stdout)}

    def snaps(self, *target: str) -> list[str]:
        return self("snapshots", *target).stdout.split()

    def info(self, pot: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(self("info", "-p", pot, "--json").stdout)
        return data

    def status(self, pot: str) -> str:
        return str(self.info(pot)["status"])

    def ends(self, pot: str, timeout: float = 10) -> None:
        """Wait for a pot whose command ends at once to be torn down (its monitor does it)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self("info", "-p", pot, "--json", check=False)  # a --rm pot may go in between
            if info.returncode != 0 or not str(json.loads(info.stdout)["status"]).startswith("running"):
                return
            assert time.monotonic() < deadline, f"pot {pot} still runs"
            time.sleep(0.05)

    def pot_with_mark(self, name: str, text: str = "old") -> None:
        self("create", "-p", name, "-b", "busybox")
        self.put(name, text)

    # State -----------------------------------------------------------------------------------

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        db = sqlite3.connect(self.cli.root / "ladle.db")
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


# The table ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One verb on one subject: `setup` makes the subject (old version), `argv` is the verb,
    `check` asserts one whole version after the repair and that the next command works."""

    id: str
    fault: str  # the plan's verb, as LADLE_FAULT names it
    steps: int  # how many steps the plan has (on dir)
    argv: list[str]
    setup: Callable[[World], None]
    check: Callable[[World], None]
    backends: tuple[str, ...] = ("dir",)
    zfs_steps: int = 0  # how many on ZFS
    nth: int = 0  # only the nth plan of that verb the command runs (0: any)
    first: tuple[str, ...] = ()  # a command that must run before gc can (init)
    xfail: dict[int, str] = field(default_factory=dict)  # step -> the bug that breaks it

    def spec(self, step: int) -> str:
        return f"{self.fault}:{step}" + (f":{self.nth}" if self.nth else "")


def nothing(w: World) -> None:
    pass


# Pots: create, clone, run ------------------------------------------------------------------------

def made_or_not(name: str, text: str | None = None) -> Callable[[World], None]:
    """The pot is there and whole (its marker `text`, if any), or it is not and can be made."""
    def check(w: World) -> None:
        if name in w.pots():
            if text is not None:
                assert w.get(name) == text
            w.put(name, "next")
            assert w.get(name) == "next"
            w("destroy", "-p", name)
        w("create", "-p", name, "-b", "busybox")
        w.put(name, "again")
        assert w.get(name) == "again"
    return check


def source(w: World) -> None:
    w.pot_with_mark("src", "src")
    w("snapshot", "-p", "src", "-n", "s1")


def with_source(inner: Callable[[World], None]) -> Callable[[World], None]:
    def check(w: World) -> None:
        assert w.get("src") == "src"
        inner(w)
    return check


def run_gone_or_stopped(name: str) -> Callable[[World], None]:
    """A killed `run --rm`: the pot is gone, or there and stopped (never running, never half made)."""
    def check(w: World) -> None:
        if name in w.pots():
            w.ends(name)
            w("destroy", "-p", name)
        proc = w("run", "--rm", "-p", name, "busybox", "--", "echo", "ran", sub=True)
        assert proc.stdout == "ran\n"
        assert name not in w.pots()
    return check


# Pots: change them -------------------------------------------------------------------------------

def marked(w: World) -> None:
    w.pot_with_mark("web", "old")


def renamed_or_not(w: World) -> None:
    names = w.pots()
    assert names in ({"web"}, {"www"}), names
    [name] = names
    assert w.get(name) == "old"
    other = "web" if name == "www" else "www"
    w("rename", "-p", name, "-n", other)
    assert w.get(other) == "old"


def cmd_old_or_new(w: World) -> None:
    assert w.rows("SELECT cmd FROM pots WHERE name='web'")[0][0] in ("sh /etc/rc", "echo new")
    w("set-cmd", "-p", "web", "-c", "echo next")
    assert w.get("web") == "old"


def env_old_or_new(w: World) -> None:
    assert w.rows("SELECT env FROM pots WHERE name='web'")[0][0] in ("{}", '{"K": "v"}')
    w("set-env", "-p", "web", "-E", "K=next")
    assert w.get("web") == "old"


def attr_old_or_new_row(w: World) -> None:
    attrs = json.loads(str(w.rows("SELECT attrs FROM pots WHERE name='web'")[0][0]))
    assert attrs["stop_timeout"] in ("10", "7", 10, 7), attrs
    w("set-attr", "-p", "web", "-A", "stop_timeout", "-V", "9")
    assert w.get("web") == "old"


def _life(w: World, name: str = "web") -> dict[str, object]:
    life: dict[str, object] = json.loads(str(w.rows(f"SELECT life FROM pots WHERE name='{name}'")[0][0]))
    return life


def health_old_or_new(w: World) -> None:
    assert _life(w).get("health", {}) in ({}, {"cmd": "true", "interval": 30.0, "timeout": 5.0, "retries": 3,
                                                "start_period": 0.0}), _life(w)
    w("set-health", "-p", "web", "-c", "true", "--interval", "1m")
    assert w.get("web") == "old"


def with_db(w: World) -> None:
    marked(w)
    w("create", "-p", "db", "-b", "busybox")


def with_dep(w: World) -> None:
    with_db(w)
    w("add-dep", "-p", "web", "-P", "db")


def dep_old_or_new(w: World) -> None:
    depends = _life(w).get("depends", [])
    assert depends in ([], ["db"]), depends
    w("del-dep" if depends else "add-dep", "-p", "web", "-P", "db")
    assert w.get("web") == "old"


def hook_old_or_new(w: World) -> None:
    assert _life(w).get("hooks", {}) in ({}, {"prestart": "/bin/true"}), _life(w)
    w("set-hook", "-p", "web", "-S", "/bin/true")
    assert w.get("web") == "old"


def boot_server(w: World) -> None:
    server(w)
    w("set-attr", "-p", "web", "-A", "start-at-boot", "-V", "yes")


def running_boot_server(w: World) -> None:
    boot_server(w)
    w("start", "web")


def destroyed(name: str) -> Callable[[World], None]:
    """destroy is finished by recovery: the pot is gone, its name free."""
    def check(w: World) -> None:
        assert name not in w.pots()
        made_or_not(name)(w)
    return check


def destroyed_with_dependant(w: World) -> None:
    """destroy -r destroys the dependant first, each in a plan of its own: killed in the first,
    the dependant is gone and the pot it depends on is whole; then it can be destroyed."""
    assert "kid" not in w.pots()
    if "src" in w.pots():
        assert w.get("src") == "src"
        w("destroy", "-p", "src", "-r")
    with_dependant(w)
    w("destroy", "-p", "src", "-r")
    assert not w.pots()


def with_dependant(w: World) -> None:
    source(w)
    w("create", "-p", "kid", "-l", "2", "-P", "src")


def copied_in(w: World) -> None:
    assert w.get("web") in ("old", "new")
    w.put("web", "next")
    assert w.get("web") == "next"


def copy_in_setup(w: World) -> None:
    marked(w)
    (w.tmp / "new").write_text("new")


def copied_out(w: World) -> None:
    out = w.tmp / "dest" / "mark"
    assert not out.exists() or out.read_text() == "old"
    assert w.get("web") == "old"


def copy_out_setup(w: World) -> None:
    marked(w)
    (w.tmp / "dest").mkdir()


def mounted_or_not(mountpoint: str, kind: str) -> Callable[[World], None]:
    def check(w: World) -> None:
        rows = w.rows(f"SELECT kind FROM pot_mounts WHERE pot='web' AND mountpoint='{mountpoint}'")
        assert rows in ([], [(kind,)]), rows
        if rows:
            w("mount-out", "-p", "web", "-m", mountpoint)
        assert w.get("web") == "old"
        args = ["-f", "data"] if kind == "fscomp" else ["-d", str(w.hostdir)]
        w("add-fscomp" if kind == "fscomp" else "mount-in", "-p", "web", *args, "-m", mountpoint)
        w("start", "web")
        w("exec", "web", "--", "test", "-f", f"{mountpoint}/seen")
        w("stop", "web")
    return check


def mount_setup(w: World) -> None:
    marked(w)
    w("set-cmd", "-p", "web", "-c", "sleep 1000")
    w("create-fscomp", "-f", "data")
    (w.fscomp_path("data") / "seen").write_text("x")
    (w.hostdir / "seen").write_text("x")


def mount_out_setup(w: World) -> None:
    mount_setup(w)
    w("mount-in", "-p", "web", "-d", str(w.hostdir), "-m", "/host")


def live_copied_in(w: World) -> None:
    assert w.status("web") == "running"
    w("exec", "web", "--", "true")
    copied_in(w)
    w("stop", "web")
    assert w.get("web") == "next"


def live_mount_setup(w: World) -> None:
    mount_setup(w)
    w("start", "web")


def live_mount_out_setup(w: World) -> None:
    mount_out_setup(w)
    w("start", "web")


def live_mounted_or_not(mountpoint: str, kind: str) -> Callable[[World], None]:
    """A live mount killed half-way: the row and the mount agree (both or neither), the pot runs
    on, and after a restart the mount is what the row says."""
    def check(w: World) -> None:
        assert w.status("web") == "running"
        rows = w.rows(f"SELECT kind FROM pot_mounts WHERE pot='web' AND mountpoint='{mountpoint}'")
        assert rows in ([], [(kind,)]), rows
        seen = w("exec", "web", "--", "test", "-f", f"{mountpoint}/seen", check=False).returncode == 0
        assert seen == bool(rows), (rows, seen)
        w("stop", "web")
        mounted_or_not(mountpoint, kind)(w)
    return check


def wiped(w: World) -> None:
    shutil.rmtree(w.cli.root)


def initialised(w: World) -> None:
    w("create-base", "-r", "busybox")
    made_or_not("web")(w)


def orphan(w: World) -> None:
    tree = w.cli.root / "storage" / "pots" / "ghost" / "fs"
    tree.mkdir(parents=True)
    (tree / "f").write_text("x")
    marked(w)


def orphan_gone(w: World) -> None:
    assert w.get("web") == "old"
    made_or_not("ghost")(w)


def level0_made_or_not(w: World) -> None:
    if "web" in w.pots():
        w("destroy", "-p", "web")
    w("create", "-p", "web", "-l", "0", "-b", "busybox")
    assert w.info("web")["level"] == 0


def one_shot(w: World) -> None:
    marked(w)
    w("set-cmd", "-p", "web", "-c", "cat /data/mark")
    w("set-attr", "-p", "web", "-A", "persistent", "-V", "no")


def ran_once_more(w: World) -> None:
    w.ends("web")
    assert w("start", "web", sub=True).stdout == "old"
    assert not w.status("web").startswith("running")


def detached_gone(name: str) -> Callable[[World], None]:
    """run --rm -d: the pot is gone once its command ends, or (killed before it ran) it is there,
    stopped, and can be destroyed; a new one is destroyed by its monitor when it ends."""
    def check(w: World) -> None:
        w.ends(name)
        if name in w.pots():
            w("destroy", "-p", name)
        w("run", "--rm", "-d", "-p", name, "busybox", "--", "true")
        deadline = time.monotonic() + 10
        while name in w.pots():
            assert time.monotonic() < deadline, f"{name} was not destroyed when its command ended"
            time.sleep(0.1)
    return check


def stopped_or_destroyed(w: World) -> None:
    """destroy -F killed while it stops the pot: the pot is stopped and whole, then destroyable."""
    assert w.pots() == {"web"}
    stopped(w)
    w("destroy", "-p", "web")


# Start and stop ----------------------------------------------------------------------------------

def server(w: World) -> None:
    marked(w)
    w("set-cmd", "-p", "web", "-c", "sleep 1000")


def running_server(w: World) -> None:
    server(w)
    w("start", "web")


def started_or_not(w: World) -> None:
    status = w.status("web")
    assert status == "running" or not status.startswith("running"), status
    if status == "running":
        w("exec", "web", "--", "true")
        w("stop", "web")
    w("start", "web")
    w("exec", "web", "--", "test", "-f", MARK)
    w("stop", "web")
    assert w.get("web") == "old"


def limits_old_or_new(w: World) -> None:
    """set-rss on a running pot: its row and its cgroup's limits are one version, and it still runs."""
    attrs = json.loads(str(w.rows("SELECT attrs FROM pots WHERE name='web'")[0][0]))
    got = json.loads(w("get-rss", "-p", "web", "-J").stdout)["Limits"]
    assert (attrs.get("rss.memory"), attrs.get("rss.pids")) in ((None, None), (str(64 << 20), "30")), attrs
    assert (got["Memory"], got["Pids"]) == ((None, 2048) if "rss.memory" not in attrs else (64 << 20, 30)), got
    w("set-rss", "-p", "web", "-M", "none")
    w("stop", "web")


def stopped(w: World) -> None:
    assert not w.status("web").startswith("running")
    assert w.get("web") == "old"
    w("start", "web")
    w("stop", "web")


# Snapshots ---------------------------------------------------------------------------------------

def snapshotted(w: World) -> None:
    w.pot_with_mark("web", "old")
    w("snapshot", "-p", "web", "-n", "s1")
    w.put("web", "new")


def one_snapshot_more_or_not(w: World) -> None:
    assert w.get("web") == "new"
    assert w.snaps("-p", "web") in (["s1"], ["s1", "s2"])
    w("rollback", "-p", "web", "-s", "s1")
    assert w.get("web") == "old"


def rolled_back_or_not(w: World) -> None:
    assert w.get("web") in ("old", "newer")
    assert w.snaps("-p", "web") in (["s1"], ["s1", "s2"])
    w("rollback", "-p", "web", "-s", "s1")
    assert w.get("web") == "old"
    assert w.snaps("-p", "web") == ["s1"]


def two_snapshots(w: World) -> None:
    snapshotted(w)
    w("snapshot", "-p", "web", "-n", "s2")
    w.put("web", "newer")


def purged(w: World) -> None:
    assert w.snaps("-p", "web") == []  # purge is finished by recovery
    assert w.get("web") == "newer"
    w("snapshot", "-p", "web", "-n", "s3")
    w("rollback", "-p", "web")
    assert w.get("web") == "newer"


def clone_to_promote(w: World) -> None:
    source(w)
    w("clone", "-p", "copy", "-P", "src")
    w.put("copy", "copy")


def promoted_or_not(w: World) -> None:
    assert w.get("src") == "src" and w.get("copy") == "copy"
    w("promote", "-p", "copy")
    w("destroy", "-p", "src", "-r")
    assert w.pots() == {"copy"} and w.get("copy") == "copy"


# Fscomps -----------------------------------------------------------------------------------------

def fscomp(w: World) -> None:
    w("create-fscomp", "-f", "data")
    (w.fscomp_path("data") / "mark").write_text("old")


def fscomp_snapshotted(w: World) -> None:
    fscomp(w)
    w("snapshot", "-f", "data", "-n", "s1")
    (w.fscomp_path("data") / "mark").write_text("new")


def fscomp_made_or_not(name: str, text: str | None = None) -> Callable[[World], None]:
    def check(w: World) -> None:
        if name in w.fscomps():
            if text is not None:
                assert (w.fscomp_path(name) / "mark").read_text() == text
            w("destroy", "-f", name)
        w("create-fscomp", "-f", name)
        (w.fscomp_path(name) / "mark").write_text("again")
    return check


def fscomp_rolled_back_or_not(w: World) -> None:
    assert (w.fscomp_path("data") / "mark").read_text() in ("old", "new")
    w("rollback", "-f", "data", "-s", "s1")
    assert (w.fscomp_path("data") / "mark").read_text() == "old"


def fscomp_one_snapshot_more_or_not(w: World) -> None:
    assert (w.fscomp_path("data") / "mark").read_text() == "new"
    assert w.snaps("-f", "data") in (["s1"], ["s1", "s2"])
    w("rollback", "-f", "data", "-s", "s1")
    assert (w.fscomp_path("data") / "mark").read_text() == "old"


def fscomp_purged(w: World) -> None:
    assert w.snaps("-f", "data") == []
    assert (w.fscomp_path("data") / "mark").read_text() == "new"
    w("snapshot", "-f", "data")


def fscomp_destroyed(w: World) -> None:
    assert "data" not in w.fscomps()
    fscomp_made_or_not("data")(w)


# Networks ----------------------------------------------------------------------------------------

def _leases(w: World) -> list[tuple[str, str]]:
    return sorted((lease["pot"], lease["address"]) for n in json.loads(w("network", "ls", "--json").stdout)
                  for lease in n["leases"])


def _lease(w: World, pot: str) -> None:
    from ladle import Client
    from ladle.engine import networks

    with Client(str(w.cli.root)) as client:
        eng = client._engine(recover=False)
        eng.execute("lease", f"pot:{pot}", [networks.lease(eng, pot, "public", 4)])


def bridge(w: World) -> None:
    w("create-private-bridge", "-B", "br", "-S", "5")


def bridge_made_or_not(w: World) -> None:
    nets = {n["name"]: n["ipv4"] for n in json.loads(w("network", "ls", "--json").stdout)}
    assert nets in ({"public": "10.192.0.0/10"}, {"public": "10.192.0.0/10", "br": "10.192.0.8/29"}), nets
    if "br" in nets:
        w("destroy-private-bridge", "-B", "br")
    bridge(w)


def bridge_destroyed(w: World) -> None:
    assert [n["name"] for n in json.loads(w("network", "ls", "--json").stdout)] == ["public"]
    bridge(w)


def leased(w: World) -> None:
    w.pot_with_mark("web", "old")
    _lease(w, "web")


def destroyed_and_released(w: World) -> None:
    """destroy is finished by recovery: the pot and its lease are gone, the address free again."""
    assert "web" not in w.pots() and _leases(w) == []
    made_or_not("web")(w)
    _lease(w, "web")
    assert _leases(w) == [("web", "10.192.0.2")]


def bridged(w: World) -> None:
    """Pot web on the public bridge, exporting 80 on 8080, and a private bridge to move it to."""
    bridge(w)
    w("create", "-p", "web", "-b", "busybox", "-N", "public-bridge")
    w.put("web", "old")
    w("export-ports", "-p", "web", "-e", "80:8080")


def bridge_pot_made_or_not(w: World) -> None:
    held = [pot for pot, _ in _leases(w)]
    assert held == (["web", "web"] if "web" in w.pots() else []), held
    made_or_not("web")(w)


def _exported(w: World) -> list[tuple[object, ...]]:
    return w.rows("SELECT pot, host_port FROM exports ORDER BY host_port")


def network_old_or_new(w: World) -> None:
    [(kind,)] = w.rows("SELECT network FROM pots WHERE name='web'")
    on = sorted({n["name"] for n in json.loads(w("network", "ls", "--json").stdout) for lease in n["leases"]})
    assert (kind, on) in (("public-bridge", ["public"]), ("private-bridge", ["br"])), (kind, on)
    assert _exported(w) == [("web", 8080)]
    w("set-network", "-p", "web", "-N", "none")
    assert _leases(w) == [] and _exported(w) == [] and w.get("web") == "old"


def exports_old_or_new(w: World) -> None:
    assert _exported(w) in ([("web", 8080)], [("web", 8081)])
    w("export-ports", "-p", "web", "-e", "80:8082")
    assert _exported(w) == [("web", 8082)]


def hosts_old_or_new(w: World) -> None:
    [(net,)] = w.rows("SELECT net FROM pots WHERE name='web'")
    assert json.loads(str(net)).get("hosts", []) in ([], [["db", "192.0.2.1"]])
    w("set-hosts", "-p", "web", "-H", "db:192.0.2.2")
    assert "db:192.0.2.2" in w("info", "web").stdout


def bridged_destroyed(w: World) -> None:
    """destroy is finished by recovery: no pot, lease or export of it is left."""
    assert "web" not in w.pots() and _leases(w) == [] and _exported(w) == []
    w("create", "-p", "web", "-b", "busybox", "-N", "public-bridge")
    w("export-ports", "-p", "web", "-e", "80:8080")


# Bases -------------------------------------------------------------------------------------------

def tarball(w: World) -> None:
    tree = w.tmp / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "mark").write_text("tar")
    with tarfile.open(w.tmp / "t.tar", "w") as tar:
        tar.add(tree, arcname=".")


def base_made_or_not(name: str, args: list[str]) -> Callable[[World], None]:
    def check(w: World) -> None:
        if name in w.bases():
            w("create", "-p", "on", "-b", name, "-t", "single")
            w("destroy", "-p", "on")
            w("destroy", "-b", name)
        w("create-base", *_argv(w, args))
        assert name in w.bases()
    return check


def second_base(w: World) -> None:
    w("create-base", "-r", "busybox", "-b", "b2")


def second_base_in_use(w: World) -> None:
    second_base(w)
    w("create", "-p", "on", "-b", "b2")


def base_destroyed(w: World) -> None:
    assert "b2" not in w.bases() and "on" not in w.pots()
    w("create-base", "-r", "busybox", "-b", "b2")
    w("create", "-p", "on", "-b", "b2")


def live_copy_setup(w: World) -> None:
    copy_in_setup(w)
    w("set-cmd", "-p", "web", "-c", "sleep 1000")
    w("start", "web")


ZFS = ("dir", "zfs")
TABLE = [
    # pots: make them
    Row("create", "create", 6, ["create", "-p", "web", "-b", "busybox"], nothing, made_or_not("web"), ZFS, zfs_steps=3),
    Row("create-single", "create", 5, ["create", "-p", "web", "-b", "busybox", "-t", "single"], nothing,
        made_or_not("web"), ZFS, zfs_steps=4),
    Row("create-level2", "create", 6, ["create", "-p", "web", "-l", "2", "-P", "src"], source,
        with_source(made_or_not("web", "src"))),
    Row("create-copy", "create", 6, ["create", "-p", "web", "-P", "src"], source,
        with_source(made_or_not("web", "src"))),
    Row("clone", "clone", 6, ["clone", "-p", "web", "-P", "src"], source, with_source(made_or_not("web", "src")),
        ZFS, zfs_steps=3),
    Row("run-rm-create", "create", 6, ["run", "--rm", "-p", "job", "busybox", "--", "true"], nothing,
        run_gone_or_stopped("job")),
    Row("run-rm-start", "start", 5, ["run", "--rm", "-p", "job", "busybox", "--", "true"], nothing,
        run_gone_or_stopped("job"), ZFS, zfs_steps=5),
    Row("run-rm-destroy", "destroy", 6, ["run", "--rm", "-p", "job", "busybox", "--", "true"], nothing,
        run_gone_or_stopped("job")),
    Row("create-level0", "create", 1, ["create", "-p", "web", "-l", "0", "-b", "busybox"], nothing,
        level0_made_or_not),
    Row("run-rm-d-create", "create", 6, ["run", "--rm", "-d", "-p", "job", "busybox", "--", "true"], nothing,
        detached_gone("job")),
    Row("run-rm-d-start", "start", 5, ["run", "--rm", "-d", "-p", "job", "busybox", "--", "true"], nothing,
        detached_gone("job")),
    # pots: change them
    Row("rename", "rename", 5, ["rename", "-p", "web", "-n", "www"], marked, renamed_or_not, ZFS, zfs_steps=7),
    Row("set-cmd", "set-cmd", 1, ["set-cmd", "-p", "web", "-c", "echo new"], marked, cmd_old_or_new),
    Row("set-env", "set-env", 1, ["set-env", "-p", "web", "-E", "K=v"], marked, env_old_or_new),
    Row("set-attr", "set-attr", 1, ["set-attr", "-p", "web", "-A", "stop_timeout", "-V", "7"], marked,
        attr_old_or_new_row),
    Row("copy-in", "copy-in", 1, ["copy-in", "-p", "web", "-s", "NEW", "-d", MARK], copy_in_setup, copied_in),
    Row("copy-out", "copy-out", 1, ["copy-out", "-p", "web", "-s", MARK, "-d", "DEST"], copy_out_setup,
        copied_out),
    Row("mount-in", "mount-in", 1, ["mount-in", "-p", "web", "-d", "HOSTDIR", "-m", "/host"], mount_setup,
        mounted_or_not("/host", "dir")),
    Row("add-fscomp", "mount-in", 1, ["add-fscomp", "-p", "web", "-f", "data", "-m", "/fs"], mount_setup,
        mounted_or_not("/fs", "fscomp")),
    Row("mount-out", "mount-out", 1, ["mount-out", "-p", "web", "-m", "/host"], mount_out_setup,
        mounted_or_not("/host", "dir")),
    Row("copy-in-live", "copy-in", 1, ["copy-in", "-p", "web", "-s", "NEW", "-d", MARK], live_copy_setup,
        live_copied_in),
    Row("mount-in-live", "mount-in", 2, ["mount-in", "-p", "web", "-d", "HOSTDIR", "-m", "/host"], live_mount_setup,
        live_mounted_or_not("/host", "dir")),
    Row("add-fscomp-live", "mount-in", 2, ["add-fscomp", "-p", "web", "-f", "data", "-m", "/fs"], live_mount_setup,
        live_mounted_or_not("/fs", "fscomp")),
    Row("mount-out-live", "mount-out", 2, ["mount-out", "-p", "web", "-m", "/host"], live_mount_out_setup,
        live_mounted_or_not("/host", "dir")),
    Row("set-health", "set-health", 1, ["set-health", "-p", "web", "-c", "true"], marked, health_old_or_new),
    Row("add-dep", "add-dep", 1, ["add-dep", "-p", "web", "-P", "db"], with_db, dep_old_or_new),
    Row("del-dep", "del-dep", 1, ["del-dep", "-p", "web", "-P", "db"], with_dep, dep_old_or_new),
    Row("set-hook", "set-hook", 1, ["set-hook", "-p", "web", "-s", "/bin/true"], marked, hook_old_or_new),
    Row("restart-stop", "stop", 2, ["restart", "web"], running_server, started_or_not),
    Row("restart-start", "start", 5, ["restart", "web"], running_server, started_or_not),
    Row("boot", "start", 5, ["boot"], boot_server, started_or_not),
    Row("boot-stop", "stop", 2, ["boot", "--stop"], running_boot_server, stopped),
    Row("start", "start", 5, ["start", "web"], server, started_or_not, ZFS, zfs_steps=5),
    Row("set-rss-live", "set-rss", 2, ["set-rss", "-p", "web", "-M", "64M", "--pids", "30"], running_server,
        limits_old_or_new),
    Row("stop", "stop", 2, ["stop", "web"], running_server, stopped, ZFS, zfs_steps=2),
    Row("destroy", "destroy", 5, ["destroy", "-p", "web"], marked, destroyed("web"), ZFS, zfs_steps=5),
    Row("destroy-r", "destroy", 5, ["destroy", "-p", "src", "-r"], with_dependant, destroyed_with_dependant,
        nth=1),
    Row("destroy-r-then", "destroy", 6, ["destroy", "-p", "src", "-r"], with_dependant, destroyed_with_dependant,
        nth=2),
    Row("destroy-F-stop", "stop", 2, ["destroy", "-p", "web", "-F"], running_server, stopped_or_destroyed),
    Row("destroy-F", "destroy", 6, ["destroy", "-p", "web", "-F"], running_server, destroyed("web")),
    # snapshots
    Row("snapshot", "snapshot", 2, ["snapshot", "-p", "web", "-n", "s2"], snapshotted, one_snapshot_more_or_not,
        ZFS, zfs_steps=2),
    Row("rollback", "rollback", 7, ["rollback", "-p", "web", "-s", "s1"], two_snapshots, rolled_back_or_not,
        ZFS, zfs_steps=3),
    Row("purge-snapshots", "purge-snapshots", 4, ["purge-snapshots", "-p", "web", "-a"], two_snapshots, purged,
        ZFS, zfs_steps=4),
    Row("promote", "promote", 5, ["promote", "-p", "copy"], clone_to_promote, promoted_or_not, ("zfs",), zfs_steps=5),
    # fscomps
    Row("create-private-bridge", "create-private-bridge", 1, ["create-private-bridge", "-B", "br", "-S", "5"],
        nothing, bridge_made_or_not),
    Row("destroy-private-bridge", "destroy-private-bridge", 1, ["destroy", "-B", "br"], bridge, bridge_destroyed),
    Row("destroy-leased", "destroy", 6, ["destroy", "-p", "web"], leased, destroyed_and_released),
    Row("create-bridged", "create", 8, ["create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-S", "dual"],
        nothing, bridge_pot_made_or_not),
    Row("set-network", "set-network", 3, ["set-network", "-p", "web", "-N", "private-bridge", "-B", "br"], bridged,
        network_old_or_new),
    Row("export-ports", "export-ports", 2, ["export-ports", "-p", "web", "-e", "80:8081"], bridged,
        exports_old_or_new),
    Row("set-hosts", "set-hosts", 1, ["set-hosts", "-p", "web", "-H", "db:192.0.2.1"], bridged, hosts_old_or_new),
    Row("destroy-bridged", "destroy", 7, ["destroy", "-p", "web"], bridged, bridged_destroyed),
    Row("create-fscomp", "create-fscomp", 5, ["create-fscomp", "-f", "data"], nothing, fscomp_made_or_not("data"),
        ZFS, zfs_steps=3),
    Row("clone-fscomp", "clone-fscomp", 5, ["clone-fscomp", "-F", "data", "-f", "copy"], fscomp_snapshotted,
        fscomp_made_or_not("copy", "old")),
    Row("destroy-fscomp", "destroy-fscomp", 3, ["destroy", "-f", "data"], fscomp, fscomp_destroyed),
    Row("snapshot-fscomp", "snapshot", 2, ["snapshot", "-f", "data", "-n", "s2"], fscomp_snapshotted,
        fscomp_one_snapshot_more_or_not),
    Row("rollback-fscomp", "rollback", 5, ["rollback", "-f", "data", "-s", "s1"], fscomp_snapshotted,
        fscomp_rolled_back_or_not, ZFS, zfs_steps=2),
    Row("purge-fscomp", "purge-snapshots", 2, ["purge-snapshots", "-f", "data", "-a"], fscomp_snapshotted,
        fscomp_purged),
    Row("start-attached", "start", 5, ["start", "web"], one_shot, ran_once_more),
    # the root itself
    Row("init", "init", 5, ["init"], wiped, initialised, nth=1, first=("init",)),
    Row("init-state", "init", 7, ["init"], wiped, initialised, nth=2, first=("init",)),
    Row("gc-orphan", "gc", 1, ["gc"], orphan, orphan_gone),
    # bases
    Row("create-base", "create-base", 12, ["create-base", "-r", "busybox", "-b", "b2"], nothing,
        base_made_or_not("b2", ["-r", "busybox", "-b", "b2"]), ZFS, zfs_steps=10),
    Row("create-base-tar", "create-base", 8, ["create-base", "-r", "t", "-b", "tb", "--from-tar", "TAR"], tarball,
        base_made_or_not("tb", ["-r", "t", "-b", "tb", "--from-tar", "TAR"])),
    Row("destroy-base", "destroy-base", 4, ["destroy", "-b", "b2"], second_base, base_destroyed),
    Row("destroy-base-r", "destroy-base", 4, ["destroy", "-b", "b2", "-r"], second_base_in_use, base_destroyed),
]


# Running one row ---------------------------------------------------------------------------------


def _argv(w: World, argv: list[str]) -> list[str]:
    """The row's command line with its placeholders filled in."""
    places = {"NEW": str(w.tmp / "new"), "DEST": str(w.tmp / "dest"), "HOSTDIR": str(w.hostdir),
              "TAR": str(w.tmp / "t.tar")}
    return [places.get(a, a) for a in argv]


def killed(w: World, fault: str, argv: list[str]) -> bool:
    """Run the verb with the fault; True if it was killed, False if it finished (exit 0)."""
    proc = subprocess.run([*LADLE, "--root", str(w.cli.root), *_argv(w, argv)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LADLE_FAULT": fault, "LADLE_LOCK_TIMEOUT": "30"})
    if proc.returncode == 0:
        return False
    assert proc.returncode == -signal.SIGKILL, f"exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return True


def repaired(w: World) -> None:
    """gc repairs the crash in one go: exit 0, no failed repair, nothing left for a second gc."""
    report = w("gc")
    out = report.stdout + report.stderr
    assert "could not" not in out and "failed" not in out and "Traceback" not in out, out
    again = w("gc")
    assert again.stdout.strip() == "nothing to clean up" and not again.stderr, again.stdout + again.stderr


def consistent(w: World) -> None:
    """Storage holds exactly what the state knows (no layer lost, nothing left over); no
    operation is open; no mount under the root but those of running pots."""
    assert w.rows("SELECT verb, subject, state FROM ops WHERE state!='done'") == []
    layers = {str(k) for (k,) in w.rows("SELECT key FROM layers")}
    snaps = {f"{k}@{n}" for k, n in w.rows("SELECT key, name FROM snapshots")}
    if w.backend == "dir":
        storage = w.cli.root / "storage"
        found = {f"{c}/{e}" for c in ("bases", "pots", "fscomps") for e in os.listdir(storage / c)}
        assert found == layers
        found_snaps = set()
        for key in layers:
            kinds = w.rows(f"SELECT kind, layout FROM layers WHERE key='{key}'")[0]
            want = {"snaps", "fs"} | ({"work"} if kinds[1] == "overlay" else set())
            if kinds[0] == "view":
                want = set()
            assert set(os.listdir(storage / key)) == want, (key, os.listdir(storage / key))
            if "snaps" in want:
                found_snaps |= {f"{key}@{s}" for s in os.listdir(storage / key / "snaps")}
        assert found_snaps == snaps
    else:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", w.dataset], capture_output=True,
                             text=True, check=True).stdout.split()
        tops = {w.dataset, *(f"{w.dataset}/{c}" for c in CATEGORIES)}
        assert set(out) == tops | {f"{w.dataset}/{k}" for k in layers | snaps}
    running = {str(p) for (p,) in w.rows("SELECT pot FROM runs WHERE state='running'")}
    root = str(w.cli.root)
    left = [m for m in leaks.mounts() if m.split()[1].startswith(root + "/")
            and m.split()[2] not in ("zfs", "fuse", "fuse.zfs")
            and not any(f"/run/{p}/" in m or m.split()[1].endswith(f"/run/{p}") for p in running)]
    assert not left, left


def each(backends: str) -> Iterator[object]:
    for row in TABLE:
        if backends not in row.backends:
            continue
        for step in range(row.zfs_steps if backends == "zfs" else row.steps):
            marks = [pytest.mark.xfail(strict=True, reason=row.xfail[step])] if step in row.xfail else []
            yield pytest.param(row, step, id=f"{row.id}-{step}", marks=marks)


def processes(w: World) -> set[str]:
    """Pot processes of this root (other test runs share the machine): found by their ancestors'
    command lines, or, once orphaned, by their mount table, which names the root's storage."""
    root = str(w.cli.root) + "/"
    found = set()
    for proc in leaks.foreign_processes():
        pid = proc.split()[0]
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                table = f.read()
        except OSError:
            table = ""
        if root in table or root in leaks._lineage(pid) + " ":
            found.add(proc)
    return found


def exercise(w: World, row: Row, step: int) -> None:
    row.setup(w)
    assert killed(w, row.spec(step), row.argv), f"{row.fault} has fewer than {step + 1} steps"
    for cmd in row.first:
        w(cmd)
    repaired(w)
    settled(w)
    consistent(w)
    if not w.rows("SELECT pot FROM runs WHERE state='running'"):
        assert not processes(w), "processes of a pot that is not running"
    row.check(w)
    repaired(w)
    consistent(w)
    assert not processes(w)


def complete(w: World, row: Row) -> None:
    """One step past the end, the fault no longer fires: the table covers the whole plan."""
    row.setup(w)
    steps = row.zfs_steps if w.backend == "zfs" else row.steps
    assert not killed(w, row.spec(steps), row.argv), f"{row.fault} has more than {steps} steps"
    settled(w)
    repaired(w)
    consistent(w)


def settled(w: World, timeout: float = 15) -> None:
    """Wait until no operation is in flight (a monitor tearing down a `run --rm -d` pot runs its own
    stop and destroy after the verb returned): none seen open three times in a row."""
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 3:
        assert time.monotonic() < deadline, "an operation is still open"
        quiet = 0 if w.rows("SELECT verb FROM ops WHERE state='running'") else quiet + 1
        time.sleep(0.1)


# Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A dir root with the busybox base, made once and copied for each dir row."""
    root = tmp_path_factory.mktemp("faults-template") / "root"
    cli = Ladle(root)
    cli("init")
    cli("create-base", "-r", "busybox")
    yield root
    cli("destroy", "-b", "busybox", check=False)


@pytest.fixture
def dir_world(template: Path, tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(template), str(root)], check=True)
    w = World(Ladle(root), "dir", tmp_path)
    yield w
    _down(w)


@pytest.fixture
def zfs_world(zfs_pool: str, tmp_path: Path) -> Iterator[World]:
    dataset = f"{zfs_pool}/f{abs(hash(tmp_path)) % 10**8}"
    cli = Ladle(tmp_path / "root")
    cli("init", "--storage", "zfs", "--dataset", dataset)
    cli("create-base", "-r", "busybox")
    w = World(cli, "zfs", tmp_path, dataset)
    yield w
    _down(w)
    if subprocess.run(["zfs", "list", dataset], capture_output=True).returncode == 0:
        run_busy("zfs", "destroy", "-r", dataset)


def _down(w: World) -> None:
    if not (w.cli.root / "ladle.db").exists():
        return
    w("gc", "--force", check=False)
    for name in w("ls", "-q", check=False).stdout.split():
        w("destroy", "-p", name, "-r", "-F", check=False)


@pytest.mark.parametrize(("row", "step"), list(each("dir")))
def test_dir_verb_killed_after_step(dir_world: World, row: Row, step: int) -> None:
    exercise(dir_world, row, step)


@pytest.mark.parametrize(("row", "step"), list(each("zfs")))
def test_zfs_verb_killed_after_step(zfs_world: World, row: Row, step: int) -> None:
    exercise(zfs_world, row, step)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in TABLE if "dir" in r.backends])
def test_dir_table_covers_every_step(dir_world: World, row: Row) -> None:
    complete(dir_world, row)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in TABLE if "zfs" in r.backends])
def test_zfs_table_covers_every_step(zfs_world: World, row: Row) -> None:
    complete(zfs_world, row)
