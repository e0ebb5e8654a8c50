"""Pots: create, destroy, clone, rename, list, describe and configure them (pot's types and levels)."""

from __future__ import annotations

import os
import time
from typing import Any

from ladle import names
from ladle.engine import hostsfile, lifecycle, netspec, networks, potnet, runs
from ladle.engine.core import Engine
from ladle.errors import Exists, NotFound, StateError, UsageError
from ladle.net.ports import ExportDrop, ExportTake
from ladle.plan.steps import RemoveTree, Rename, Step
from ladle.state.steps import put

DEFAULT_CMD = "sh /etc/rc"


def _free(eng: Engine, name: str) -> None:
    if eng.store.get("pots", name=name):
        raise Exists(f"pot {name} already exists")
    if eng.snap.exists(f"pots/{name}"):
        raise Exists(f"storage layer pots/{name} already exists (run 'ladle gc')")


def _latest(eng: Engine, key: str, owner: str, fix: str) -> str:
    """The ref of `key`'s latest snapshot; without one, a line naming `owner` and how to `fix` it."""
    snap = eng.snap.latest(key)
    if snap is None:
        raise UsageError(f"{owner} has no snapshot: {fix}")
    return f"{key}@{snap}"


def _pot_latest(eng: Engine, pot: dict[str, Any]) -> str:
    name = pot["name"]
    return _latest(eng, pot["layer"], f"pot {name}", f"take one with 'ladle snapshot -p {name}'")


def _base_latest(eng: Engine, base: dict[str, Any]) -> str:
    return _latest(eng, base["layer"], f"base {base['name']}", "create the base again")


def create(eng: Engine, name: str, base: str | None, type_: str, level: int | None, potbase: str | None,
           cmd: str | None, net: potnet.Request | str | None = None, attrs: dict[str, str] | None = None,
           ports: list[str] | None = None) -> str:
    """pot's create: `single` pots own a whole tree; `multi` level 0 is the base itself, level 1 a
    writable layer on a base snapshot (or a copy of another pot's with -P), level 2 a writable
    layer on a level-1 pot's latest snapshot (-P required).

    Level 2 is never layered on the level-1 pot's live tree: overlayfs leaves changing a lower
    layer under a mount undefined, and ZFS can only clone a snapshot. Without a snapshot it is
    refused rather than taking one: pot never snapshots implicitly, a snapshot needs the level-1
    pot stopped, and which state the level-2 pot starts from is the user's choice.

    A bridge pot's addresses are leased, and its `ports` exported, in the plan: a create that
    fails gives them back."""
    names.pot_name(name)
    req = potnet.request(net)
    if type_ not in ("single", "multi"):
        raise UsageError(f"invalid type {type_!r}: use single or multi")
    if req.type not in potnet.TYPES:
        raise UsageError(f"invalid network type {req.type!r}: use {', '.join(potnet.TYPES)}")
    if level is None:
        level = 0 if type_ == "single" else 1
    if level not in (0, 1, 2) or (type_ == "single" and level != 0):
        raise UsageError(f"invalid level {level} for a {type_} pot (single: 0; multi: 0, 1 or 2)")
    if level == 2 and not potbase:
        raise UsageError("a level 2 pot needs -P POT (the level 1 pot whose latest snapshot it starts from)")
    if potbase and type_ == "multi" and level == 0:
        raise UsageError("-P cannot be used with a level 0 pot")
    eng.host.check_layout(eng.snap.name, type_, level)
    with eng.lock(f"pot-{name}"):
        _free(eng, name)
        ref = eng.pot(potbase) if potbase else None
        if ref:
            if ref["type"] != type_ or (type_ == "multi" and ref["level"] != 1):
                want = "a single pot" if type_ == "single" else "a multi level 1 pot"
                raise UsageError(f"-P {potbase}: must be {want}")
            base = base or ref["base"]
            if base != ref["base"]:
                raise UsageError(f"-P {potbase} is on base {ref['base']}, not {base}")
        if not base:
            raise UsageError("a base is needed: -b BASE (see 'ladle bases')")
        brow = eng.base(base)
        netrow, steps = potnet.settle(eng, name, req)
        steps += potnet.exports(eng, name, req.type, ports or [])
        key = f"pots/{name}"
        if type_ == "multi" and level == 0:
            key = brow["layer"]
        elif type_ == "single":
            steps += eng.snap.copy(key, _pot_latest(eng, ref) if ref else _base_latest(eng, brow))
        elif level == 1:
            latest = _pot_latest(eng, ref) if ref else _base_latest(eng, brow)
            steps += eng.snap.copy(key, latest) if ref else eng.snap.prepare(key, latest)
        else:
            steps += eng.snap.prepare(key, _pot_latest(eng, ref))  # type: ignore[arg-type]
        defaults = eng.host.attr_defaults()
        for k, v in (attrs or {}).items():
            defaults.update(expand_attr(eng, k, v))
        row = {"name": name, "base": base, "type": type_, "level": level, "potbase": potbase,
               "cmd": cmd or DEFAULT_CMD, "env": {}, "attrs": defaults, "network": req.type,
               "layer": key, "created": time.time(), "net": netrow}
        steps.append(put("pots", {"name": name}, row, None))
        eng.execute("create", f"pot:{name}", steps)
    hostsfile.refresh(eng, netrow.get("network"), skip=name)
    return f"created pot {name}" + _addresses(eng, name)


def _addresses(eng: Engine, name: str) -> str:
    """What a new pot got: ' (10.192.0.2, port 8080->80/tcp)' (nothing in a dry run)."""
    if eng.dry_run:
        return ""
    from ladle._models import Export
    pot = eng.pot(name)
    got = [a["address"] for _, a in sorted(netspec.addresses(eng, pot).items())]
    got += [f"{a['interface']}|{a['address']}" for a in pot["net"].get("aliases", [])]
    got += [f"port {Export(**p).text}" for p in netspec.ports(eng, name)]
    return f" ({', '.join(got)})" if got else ""


def dependants(eng: Engine, name: str) -> list[str]:
    """Pots that would be orphaned by destroying `name`: those whose storage depends on one of its
    snapshots, as the snapshotter says (a ZFS origin, an overlay's lower directory). A pot made
    with -P as a copy (`zfs send`, `cp`) depends on nothing; nor, after `promote`, does a clone."""
    pot = eng.pot(name)
    found = set()
    if pot["layer"] == f"pots/{name}":
        for key in eng.snap.dependants(pot["layer"]):
            if key.startswith("pots/"):
                found.add(key.split("/", 1)[1])
    found.discard(name)
    return sorted(found)


def destroy(eng: Engine, name: str, recursive: bool, force: bool) -> str:
    """Destroy a pot; one that others depend on (add-dep) only with -F, which drops those edges."""
    from ladle.engine import deps as depgraph

    pot = eng.pot(name)
    users = depgraph.dependants(eng, name)
    if users and not force:
        raise UsageError(f"pot {name} is a dependency of {', '.join(users)}: use -F to destroy it and drop that")
    deps = dependants(eng, name)
    if deps and not recursive:
        raise UsageError(f"pot {name} is used by {', '.join(deps)}: use -r to destroy them too")
    for dep in deps:
        if eng.store.get("pots", name=dep):
            destroy(eng, dep, recursive=True, force=force)
    with eng.lock(f"pot-{name}"):
        if runs.is_running(eng, name):
            if not force:
                raise StateError(f"pot {name} is running: stop it first, or use -F")
            lifecycle.stop_locked(eng, name)
        steps: list[Step] = eng.host.leftover_plan(name)  # processes a crash left with no run of them
        steps += [put("pot_mounts", {"pot": name, "mountpoint": m["mountpoint"]}, None, m)
                             for m in eng.store.all("pot_mounts", pot=name)]
        run = eng.store.get("runs", pot=name)
        if run:
            steps.append(put("runs", {"pot": name}, None, run))
        steps += networks.release(eng, name) + potnet.drop_exports(eng, name)
        steps += depgraph.drop_steps(eng, name)
        steps.append(put("pots", {"name": name}, None, pot))
        for copy in eng.store.all("pots", potbase=name):  # copies made with -P outlive it
            steps.append(put("pots", {"name": copy["name"]}, {**copy, "potbase": None}, copy))
        if pot["layer"] == f"pots/{name}":
            steps += eng.snap.remove(pot["layer"])
        steps += [RemoveTree(os.path.join(eng.root, "run", name)),
                  RemoveTree(os.path.join(eng.root, "logs", f"{name}.log"))]
        eng.execute("destroy", f"pot:{name}", steps, on_crash="finish")
    hostsfile.refresh(eng, potnet.network_of(pot))
    return f"destroyed pot {name}"


def clone(eng: Engine, new: str, source: str, snap: str | None, addresses: list[str] | None = None) -> str:
    """A new pot from a snapshot of another, sharing blocks where the backend can (ZFS clone).
    It is on the source's network with addresses of its own (`addresses`, else new leases; an
    alias pot's must be given) and exports no ports (a host port is one pot's)."""
    names.pot_name(new)
    with eng.lock(f"pot-{new}"):
        _free(eng, new)
        src = eng.pot(source)
        if src["layer"] != f"pots/{source}":
            raise UsageError(f"pot {source} is a level 0 pot (its tree is base {src['base']}): it cannot be cloned")
        if snap is None:
            ref = _pot_latest(eng, src)
        else:
            names.name("snapshot", snap)
            if snap not in eng.snap.snapshots(src["layer"]):
                raise NotFound(f"pot {source} has no snapshot {snap}")
            ref = f"{src['layer']}@{snap}"
        req = potnet.Request(src["network"], list(addresses or []), potnet.network_of(src)
                             if src["network"] == "private-bridge" else None, src["net"].get("stack"))
        netrow, steps = potnet.settle(eng, new, req, src["net"])
        key = f"pots/{new}"
        steps += eng.snap.clone(key, ref)
        row = {**src, "name": new, "layer": key, "created": time.time(), "net": netrow}
        steps.append(put("pots", {"name": new}, row, None))
        for m in eng.store.all("pot_mounts", pot=source):
            steps.append(put("pot_mounts", {"pot": new, "mountpoint": m["mountpoint"]}, {**m, "pot": new}, None))
        eng.execute("clone", f"pot:{new}", steps)
    hostsfile.refresh(eng, netrow.get("network"), skip=new)
    return f"cloned pot {source} to {new}" + _addresses(eng, new)


def rename(eng: Engine, old: str, new: str) -> str:
    names.pot_name(new)
    if new == old:  # refused before locking: the two locks would be one, taken twice
        raise UsageError(f"pot {old} is already called {new}")
    with eng.lock(f"pot-{old}"), eng.lock(f"pot-{new}"):
        pot = eng.pot(old)
        _free(eng, new)
        if runs.is_running(eng, old):
            raise StateError(f"pot {old} is running: stop it first")
        steps: list[Step] = []
        layer = pot["layer"]
        if layer == f"pots/{old}":
            steps += eng.snap.rename(layer, f"pots/{new}")
            layer = f"pots/{new}"
        steps += [put("pots", {"name": old}, None, pot),
                  put("pots", {"name": new}, {**pot, "name": new, "layer": layer}, None)]
        for m in eng.store.all("pot_mounts", pot=old):
            steps += [put("pot_mounts", {"pot": old, "mountpoint": m["mountpoint"]}, None, m),
                      put("pot_mounts", {"pot": new, "mountpoint": m["mountpoint"]}, {**m, "pot": new}, None)]
        run = eng.store.get("runs", pot=old)
        if run:
            steps.append(put("runs", {"pot": old}, None, run))
        steps += networks.move(eng, old, new)
        for x in eng.store.all("exports", order="host_port, proto", pot=old):
            steps += [ExportDrop(old, x["proto"], x["pot_port"], x["host_port"]),
                      ExportTake(new, x["proto"], x["pot_port"], x["host_port"])]
        for other in eng.store.all("pots", potbase=old):
            steps.append(put("pots", {"name": other["name"]}, {**other, "potbase": new}, other))
        from ladle.engine import deps
        steps += deps.rename_steps(eng, old, new)
        log = os.path.join(eng.root, "logs", f"{old}.log")
        if os.path.exists(log):
            steps.append(Rename(log, os.path.join(eng.root, "logs", f"{new}.log")))
        eng.execute("rename", f"pot:{old}", steps)
    hostsfile.refresh(eng, potnet.network_of(pot))
    return f"renamed pot {old} to {new}"


def update(eng: Engine, name: str, verb: str, **changes: Any) -> str:
    """Change columns of a pot's row (set-cmd, set-env, set-attr); applied at the next start."""
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        eng.execute(verb, f"pot:{name}", [put("pots", {"name": name}, {**pot, **changes}, pot)])
    what = ", ".join(sorted(changes))
    return f"pot {name}: {what} set (applied at its next start)"


def set_cmd(eng: Engine, name: str, cmd: str) -> str:
    """pot's set-cmd: a shell command line; one pair of surrounding double quotes is pot's own
    quoting and is dropped."""
    if len(cmd) >= 2 and cmd[0] == cmd[-1] == '"':
        cmd = cmd[1:-1]
    if not cmd.strip():
        raise UsageError("the command must not be empty")
    return update(eng, name, "set-cmd", cmd=cmd)


def set_env(eng: Engine, name: str, env: dict[str, str]) -> str:
    for key in env:
        names.env_pair(f"{key}=")
    return update(eng, name, "set-env", env=dict(env))


def expand_attr(eng: Engine, attr: str, value: str) -> dict[str, str]:
    """The attributes to store for attr=value: the life cycle's, the same on every host (a
    restart policy, restart-unhealthy, start-at-boot), or the host's."""
    if attr == "restart":
        from ladle.supervise.policy import parse
        return {attr: parse(value)}
    if attr in ("restart-unhealthy", "start-at-boot"):
        from ladle.hosts.base import yes_no
        return {attr: yes_no(attr, value)}
    return eng.host.expand_attr(attr, value)


def set_attr(eng: Engine, name: str, attr: str, value: str) -> str:
    changes = expand_attr(eng, attr, value)
    pot = eng.pot(name)
    update(eng, name, "set-attr", attrs={**pot["attrs"], **changes})
    return f"pot {name}: {', '.join(f'{k}={v}' for k, v in changes.items())}"


def get_attr(eng: Engine, name: str, attr: str) -> str:
    attrs = eng.pot(name)["attrs"]
    if attr not in attrs:
        raise NotFound(f"pot {name} has no attribute {attr}")
    return str(attrs[attr])
