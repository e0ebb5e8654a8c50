"""Bases: level-0 trees that pots are made from (a FreeBSD release, busybox, or a tarball)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ladle import names
from ladle.engine.core import Engine
from ladle.engine.snapshots import snapshot_name
from ladle.errors import Exists, NotFound, UsageError
from ladle.plan.steps import Step
from ladle.state.steps import put

if TYPE_CHECKING:
    from ladle._models import Base


def create_base(eng: Engine, release: str, name: str | None, from_tar: str | None) -> str:
    name = names.name("base", name or release)
    if not from_tar:
        release = eng.host.canonical_release(release)
    if from_tar:
        from_tar = os.path.abspath(from_tar)
        if not os.path.lexists(from_tar):
            raise NotFound(f"tarball {names.shown(from_tar)} does not exist")
        if not os.path.isfile(from_tar):
            raise UsageError(f"tarball {names.shown(from_tar)} is not a file")
    with eng.lock(f"base-{name}"):
        if eng.store.get("bases", name=name):
            raise Exists(f"base {name} already exists")
        key = f"bases/{name}"
        if eng.snap.exists(key):
            raise Exists(f"storage layer {key} already exists")
        steps = eng.snap.new(key)
        if from_tar:
            from ladle.storage.tarsafe import ExtractTar
            cfg = eng.cfg  # dir storage keeps the tree twice: its snapshot is a copy
            steps.append(ExtractTar(from_tar, eng.snap.path(key), cfg.max_unpacked_size, cfg.max_tar_members,
                                    cfg.max_tar_depth, copies=2 if eng.snap.name == "dir" else 1))
        else:
            cache = os.path.join(eng.root, "cache")
            steps += eng.host.release_base_steps(release, eng.snap.path(key), cache, eng.cfg.mirror)
        steps += eng.snap.snapshot(key, snapshot_name(eng, key))
        row = {"name": name, "release": release, "source": from_tar or f"release:{release}",
               "layer": key, "created": time.time()}
        steps.append(put("bases", {"name": name}, row, None))
        eng.execute("create-base", f"base:{name}", steps)
    return f"created base {name}"


def list_bases(eng: Engine) -> list[Base]:
    from ladle._models import Base

    users: dict[str, int] = {}
    for (base,) in eng.store.db.execute("SELECT base FROM pots"):
        users[base] = users.get(base, 0) + 1
    return [Base(name=r["name"], release=r["release"], pots=users.get(r["name"], 0), source=r["source"],
                 created=r["created"]) for r in eng.store.all("bases", order="name")]


def destroy_base(eng: Engine, name: str, recursive: bool, force: bool) -> str:
    from ladle.engine.pots import destroy

    base = eng.base(name)
    pots = [r["name"] for r in eng.store.all("pots", order="level DESC, name", base=name)]
    if pots and not recursive:
        raise UsageError(f"base {name} is used by pots {', '.join(pots)}: use -r to destroy them too")
    for pot in pots:
        if eng.store.get("pots", name=pot):
            destroy(eng, pot, recursive=True, force=force)
    others = [d for d in eng.snap.dependants(base["layer"]) if not d.startswith("pots/")]
    if others:
        raise UsageError(f"base {name} is still used by {', '.join(others)}")
    with eng.lock(f"base-{name}"):
        steps: list[Step] = [put("bases", {"name": name}, None, base), *eng.snap.remove(base["layer"])]
        eng.execute("destroy-base", f"base:{name}", steps, on_crash="finish")
    return f"destroyed base {name}"
