"""File-system components and mounts: fscomps, mount-in/out, copy-in/out."""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING

from ladle import names
from ladle.engine import lifecycle, runs
from ladle.engine.core import Engine
from ladle.errors import Exists, NotFound, UsageError
from ladle.plan.steps import Step
from ladle.state.steps import put
from ladle.storage.snapshotter import Mount

if TYPE_CHECKING:
    from ladle._models import Fscomp


def create_fscomp(eng: Engine, name: str) -> str:
    names.name("fscomp", name)
    with eng.lock(f"fscomp-{name}"):
        if eng.store.get("fscomps", name=name):
            raise Exists(f"fscomp {name} already exists")
        key = f"fscomps/{name}"
        steps = eng.snap.new(key)
        steps.append(put("fscomps", {"name": name}, {"name": name, "layer": key, "created": time.time()}, None))
        eng.execute("create-fscomp", f"fscomp:{name}", steps)
    return f"created fscomp {name}"


def clone_fscomp(eng: Engine, source: str, new: str, snap: str | None) -> str:
    names.name("fscomp", new)
    with eng.lock(f"fscomp-{new}"):
        if eng.store.get("fscomps", name=new):
            raise Exists(f"fscomp {new} already exists")
        src = eng.fscomp(source)
        snap = snap or eng.snap.latest(src["layer"])
        if snap is None:
            raise UsageError(f"fscomp {source} has no snapshot: take one with 'ladle snapshot -f {source}'")
        if snap not in eng.snap.snapshots(src["layer"]):
            raise NotFound(f"fscomp {source} has no snapshot {snap}")
        key = f"fscomps/{new}"
        steps = eng.snap.clone(key, f"{src['layer']}@{snap}")
        steps.append(put("fscomps", {"name": new}, {"name": new, "layer": key, "created": time.time()}, None))
        eng.execute("clone-fscomp", f"fscomp:{new}", steps)
    return f"cloned fscomp {source} to {new}"


def list_fscomps(eng: Engine) -> list[Fscomp]:
    from ladle._models import Fscomp

    users: dict[str, list[str]] = {}
    for row in eng.store.all("pot_mounts", kind="fscomp"):
        users.setdefault(row["source"], []).append(row["pot"])
    return [Fscomp(r["name"], eng.snap.path(r["layer"]), users.get(r["name"], []))
            for r in eng.store.all("fscomps", order="name")]


def destroy_fscomp(eng: Engine, name: str) -> str:
    with eng.lock(f"fscomp-{name}"):
        row = eng.fscomp(name)
        users = sorted({r["pot"] for r in eng.store.all("pot_mounts", kind="fscomp", source=name)})
        if users:
            raise UsageError(f"fscomp {name} is mounted in pots {', '.join(users)}: mount-out first")
        deps = eng.snap.dependants(row["layer"])
        if deps:
            raise UsageError(f"fscomp {name} is the origin of {', '.join(deps)}: promote or destroy them first")
        steps: list[Step] = [put("fscomps", {"name": name}, None, row), *eng.snap.remove(row["layer"])]
        eng.execute("destroy-fscomp", f"fscomp:{name}", steps, on_crash="finish")
    return f"destroyed fscomp {name}"


def add_mount(eng: Engine, pot: str, kind: str, source: str, mountpoint: str, ro: bool) -> str:
    """add-fscomp (`kind` 'fscomp') and mount-in (`kind` 'dir'): at once in a running pot."""
    mountpoint = names.mountpoint(mountpoint)
    if kind == "fscomp":
        eng.fscomp(source)
    else:
        if not os.path.isabs(source):
            raise UsageError(f"host directory {source!r} must be an absolute path")
        _must_be_dir("host directory", source)
        source = os.path.realpath(source)
    with eng.lock(f"pot-{pot}"):
        row = eng.pot(pot)
        if eng.store.get("pot_mounts", pot=pot, mountpoint=mountpoint):
            raise Exists(f"pot {pot} already has a mount at {mountpoint}")
        mount = {"pot": pot, "mountpoint": mountpoint, "kind": kind, "source": source, "ro": int(ro),
                 "seq": time.time()}
        steps: list[Step] = [put("pot_mounts", {"pot": pot, "mountpoint": mountpoint}, mount, None)]
        live = runs.live_run(eng, pot)
        now: list[Step] | None = None
        if live:
            s = lifecycle.spec(eng, row)
            path = eng.snap.path(eng.fscomp(source)["layer"]) if kind == "fscomp" else source
            now = eng.host.live_mount_plan(s, live, Mount("bind", path, mountpoint, ("ro",) if ro else ()))
        eng.execute("mount-in", f"pot:{pot}", steps + (now or []))
    return (f"{source} {'is' if now is not None else 'will be'} mounted at {mountpoint} in pot {pot}"
            + (" (read-only)" if ro else "") + ("" if now is not None else " from its next start")
            + (f" ({eng.host.name} does not mount into a running pot)" if live and now is None else ""))


def remove_mount(eng: Engine, pot: str, mountpoint: str) -> str:
    mountpoint = names.mountpoint(mountpoint)
    with eng.lock(f"pot-{pot}"):
        prow = eng.pot(pot)
        row = eng.store.get("pot_mounts", pot=pot, mountpoint=mountpoint)
        if row is None:
            raise NotFound(f"pot {pot} has no mount at {mountpoint}")
        steps: list[Step] = [put("pot_mounts", {"pot": pot, "mountpoint": mountpoint}, None, row)]
        live = runs.live_run(eng, pot)
        if live:
            steps += eng.host.live_unmount_plan(lifecycle.spec(eng, prow), live, mountpoint)
        eng.execute("mount-out", f"pot:{pot}", steps)
    return f"removed the mount at {mountpoint} from pot {pot}"


def copy(eng: Engine, pot: str, direction: str, host_path: str, pot_path: str, create_parents: bool,
         keep_setuid: bool = False) -> str:
    """copy-in / copy-out; the host driver never follows a symlink out of the pot's root nor opens
    a FIFO or device node of the pot, and copy-out drops setuid/setgid unless `keep_setuid`."""
    pot_path = names.mountpoint(pot_path, "path", spaces=True) if pot_path != "/" else "/"
    host_path = os.path.abspath(host_path)
    if direction == "in":
        _must_be_file_or_dir(host_path)
    if direction == "out":
        _must_be_dir("destination directory", host_path)
    with eng.lock(f"pot-{pot}"):
        row = eng.pot(pot)
        spec = lifecycle.spec(eng, row)
        run = runs.live_run(eng, pot)
        steps = eng.host.copy_plan(spec, run, direction, host_path, pot_path, create_parents, keep_setuid)
        eng.execute(f"copy-{direction}", f"pot:{pot}", steps)
    if direction == "in":
        return f"copied {host_path} to {pot_path} in pot {pot}"
    return f"copied {pot_path} from pot {pot} to {host_path}"


def _must_be_dir(kind: str, path: str) -> None:
    if not os.path.lexists(path):
        raise NotFound(f"{kind} {names.shown(path)} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"{kind} {names.shown(path)} is not a directory")


def _must_be_file_or_dir(path: str) -> None:
    """What copy-in copies: a file or a tree (a host symlink is the operator's and followed). A
    FIFO, socket or device at the top would be 'copied' as nothing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotFound(f"source {names.shown(path)} does not exist") from None
    except OSError as e:
        raise UsageError(f"source {names.shown(path)}: {e.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device node")
        raise UsageError(f"source {names.shown(path)} is {kind}, not a file or directory")
