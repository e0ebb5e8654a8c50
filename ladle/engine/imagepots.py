"""Pots from images: an image's layers unpacked once each into a committed snapshot (keyed by
chain id, shared by every image and pot that has it), a pot's tree prepared on the top one, and
its command, environment, user and working directory taken from the image config as Docker does.

Each layer is its own plan under its own lock (`layer-<hex>`): two creates from one image never
unpack a layer twice, and a layer already there costs nothing. A create that fails (a hostile or
corrupt layer) removes the layers it unpacked itself, so nothing half-made is left; the content
store is held shared throughout, so `image prune` never takes a blob from under an unpack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ladle import names
from ladle.engine import health, hostsfile, images, potnet
from ladle.engine.core import Engine
from ladle.errors import LadleError, NotFound, UsageError
from ladle.net.ports import parse as parse_export
from ladle.state.locks import default_timeout
from ladle.state.steps import put

if TYPE_CHECKING:
    from ladle.images.blobs import BlobStore
    from ladle.images.config import ImageConfig
    from ladle.images.media import Manifest

def is_image(eng: Engine, text: str) -> bool:
    """Whether `run`'s first word names an image: anything that is not a local base."""
    return eng.store.get("bases", name=text) is None


def _find(eng: Engine, text: str, pull: bool, insecure: bool,
          progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    from ladle.images import index
    try:
        found = index.find(eng.store, text)
    except NotFound:
        if not pull:
            raise
        images.pull(eng, text, insecure, progress)
        found = index.find(eng.store, text)
    if len({r["manifest"] for r in found}) > 1:
        raise UsageError(f"{text} names more than one image: give NAME:TAG or NAME@DIGEST")
    return found[0]


def _overlay(eng: Engine) -> bool:
    """Whether a layer is an overlayfs upper over the ones below (dir storage on Linux), else a
    whole tree (a ZFS clone of the layer below, or a copy on FreeBSD's dir storage)."""
    return eng.snap.name == "dir" and eng.cfg.host == "linux"


def stack(eng: Engine, key: str, parent: str) -> list[Any]:
    """Steps for a new layer `key` starting as the committed snapshot `parent`."""
    if eng.snap.name == "dir" and eng.cfg.host != "linux":
        return eng.snap.copy(key, parent)
    return eng.snap.prepare(key, parent)


def unpack(eng: Engine, blobs: BlobStore, manifest: Manifest, cfg: ImageConfig) -> str:
    """Every layer of the image as a committed snapshot; the ref of the top one."""
    from ladle.storage.layers import LAYER_TYPES, SNAP, UnpackLayer, chain_ids, key_of
    if not manifest.layers:
        raise UsageError("the image has no layers: there is nothing to run")
    for d in manifest.layers:
        if d.media_type not in LAYER_TYPES:
            raise UsageError(f"layer {d.digest} is of an unsupported media type {d.media_type!r}")
    made: list[str] = []
    parent: str | None = None
    try:
        for d, diff_id, chain in zip(manifest.layers, cfg.diff_ids, chain_ids(list(cfg.diff_ids)), strict=True):
            key = key_of(chain)
            ref = f"{key}@{SNAP}"
            with eng.lock("layer-" + key.split("/")[1]):
                if not eng.snap.exists(ref):
                    if eng.snap.exists(key):  # an unpack that failed and was not undone
                        eng.execute("unpack", "layer:" + key.split("/")[1], eng.snap.remove(key))
                    overlay = parent is not None and _overlay(eng)
                    steps = stack(eng, key, parent) if parent else eng.snap.new(key)
                    lowers = eng.snap.lowers(parent) if overlay and parent else []  # type: ignore[attr-defined]
                    steps.append(UnpackLayer(blobs.path(d.digest), d.media_type, diff_id, eng.snap.path(key),
                                             "overlay" if overlay else "full", lowers, eng.cfg.max_unpacked_size,
                                             eng.cfg.max_tar_members, eng.cfg.max_tar_depth,
                                             flags=eng.cfg.host == "freebsd"))
                    steps += eng.snap.commit(key, SNAP)
                    eng.execute("unpack", "layer:" + key.split("/")[1], steps)
                    if not eng.dry_run:
                        made.append(key)
            parent = ref
    except LadleError:
        images.remove_layers(eng, list(reversed(made)))
        raise
    assert parent is not None
    return parent


def argv_of(cfg: ImageConfig, args: list[str], entrypoint: str | None) -> list[str]:
    """Docker's rule: Entrypoint then Cmd; arguments replace Cmd, --entrypoint replaces the
    Entrypoint (and drops the image's Cmd, as Docker does)."""
    entry = [entrypoint] if entrypoint else list(cfg.entrypoint)
    cmd = args or ([] if entrypoint else list(cfg.cmd))
    argv = entry + cmd
    if not argv:
        raise UsageError("the image has no command (no Entrypoint or Cmd): give one after the image")
    return argv


def runtime_of(cfg: ImageConfig, row: dict[str, Any], argv: list[str], ref: str) -> dict[str, Any]:
    """What the pot's `image` column keeps: how to run it, and what `info` shows."""
    return {"ref": ref, "manifest": row["manifest"], "os": cfg.os, "argv": argv, "workdir": cfg.workdir,
            "user": cfg.user, "stop_signal": cfg.stop_signal, "exposed_ports": list(cfg.exposed_ports),
            "volumes": list(cfg.volumes)}


def published(exposed: tuple[str, ...], explicit: list[str], net_type: str) -> list[str]:
    """`--publish-all`: each of the image's ExposedPorts that `explicit` (-e) does not already
    export, on the lowest free host port (pot's rule, as Docker's -P takes a free one)."""
    if exposed and net_type not in potnet.BRIDGES:
        raise UsageError(f"--publish-all: only a pot on a bridge can export ports, not one of -N {net_type}")
    given = {(pot_port, proto) for proto, pot_port, _ in map(parse_export, explicit)}
    out = []
    for text in exposed:
        port, _, proto = text.partition("/")
        if (int(port), proto or "tcp") not in given:
            out.append(f"{int(port)}/{proto or 'tcp'}")
    return out


def create(eng: Engine, name: str, text: str, args: list[str], entrypoint: str | None,
           net: potnet.Request | str | None, attrs: dict[str, str], ports: list[str] | None,
           pull: bool, insecure: bool = False, progress: Callable[[str, int, int], None] | None = None,
           publish_all: bool = False, build: str | None = None) -> str:
    """A pot whose tree is a writable layer on the image's top layer (pulled first if missing
    and `pull`), and whose command is the image's (or `args`, `entrypoint`); with `publish_all`
    its ExposedPorts exported too; `build` names the build whose step it is (engine/buildwork),
    recorded in its row as it is made."""
    import shlex

    from ladle.engine import pots
    names.pot_name(name)
    if eng.dry_run:
        raise UsageError("a pot from an image has no dry run (its layers are unpacked as it is made)")
    req = potnet.request(net)
    if req.type not in potnet.TYPES:
        raise UsageError(f"invalid network type {req.type!r}: use {', '.join(potnet.TYPES)}")
    blobs = images._blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        row = _find(eng, text, pull, insecure, progress)
        manifest, cfg = images.image_config(blobs, row)
        if cfg.os and cfg.os != eng.cfg.host:
            raise UsageError(f"image {text} is for {cfg.os}, not for this {eng.cfg.host} host")
        argv = argv_of(cfg, args, entrypoint)
        if publish_all:
            ports = [*(ports or []), *published(cfg.exposed_ports, ports or [], req.type)]
        check = health.from_image(cfg.healthcheck, text, cfg.shell)
        single = eng.snap.name == "dir" and eng.cfg.host != "linux"
        eng.host.check_layout(eng.snap.name, "single" if single else "multi", 0 if single else 1)
        top = unpack(eng, blobs, manifest, cfg)
        with eng.lock(f"pot-{name}"):
            pots._free(eng, name)
            netrow, steps = potnet.settle(eng, name, req)
            steps += potnet.exports(eng, name, req.type, ports or [])
            key = f"pots/{name}"
            steps += stack(eng, key, top)
            defaults = eng.host.attr_defaults()
            for k, v in attrs.items():
                defaults.update(eng.host.expand_attr(k, v))
            env = dict(e.split("=", 1) for e in cfg.env)
            ref = f"{row['name']}:{row['tag']}" if row["tag"] else f"{row['name']}@{row['digest']}"
            runtime = {**runtime_of(cfg, row, argv, ref), **({"build": build} if build else {})}
            prow = {"name": name, "base": ref, "type": "single" if single else "multi", "level": 0 if single else 1,
                    "potbase": None, "cmd": shlex.join(argv), "env": env, "attrs": defaults, "network": req.type,
                    "layer": key, "created": time.time(), "net": netrow, "image": runtime,
                    "life": {"health": check} if check else {}}
            steps.append(put("pots", {"name": name}, prow, None))
            eng.execute("create", f"pot:{name}", steps)
    hostsfile.refresh(eng, netrow.get("network"), skip=name)
    return f"created pot {name} from image {ref}" + pots._addresses(eng, name)
