"""`ladle build -f FILE -t REF [DIR]`: an image from a Containerfile, one layer per RUN, COPY and
ADD, each made in a pot and committed as `ladle commit` does.

Every step ends at an image: the current image's config changed (ENV, USER, CMD, ...) or a new
layer on its layers. A layer step runs in a non-persistent pot on the current image (network
none unless asked, the image's env, user and workdir, the build arguments in its env for RUN);
its changes, read as `commit` reads them (`changes`), are the layer; the pot is destroyed
whatever happens. Each step's image is kept
in the index as `ladle.build/cache:<key>`, the key a hash of the image before it, the step's text
and, for COPY/ADD, the copied files' contents and modes, for RUN the build arguments: a second
build of an unchanged file finds every step there and ends at the same digest. `-t REF` is
recorded last, so a failed build names nothing.

The context is confined: a source must resolve (following links) inside DIR, and its files are
staged into a private directory without following any link, then copied in with copy-in.

Several FROMs make a multi-stage build (engine/stages.py): a stage starts from an earlier one's
image or copies out of it with COPY --from; only the last stage's image is tagged.

A build's staged files live in its own directory and its pots carry its id (`engine/buildwork.py`):
one killed in the middle of a step leaves nothing that `ladle gc`, or the next build, does not take.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ladle import names
from ladle.engine import buildcopy, buildwork, changes, imagepots, images, potnet, pots, stages
from ladle.engine.core import Engine
from ladle.errors import HostError, LadleError, UsageError
from ladle.images import buildctx
from ladle.images import containerfile as cf
from ladle.state.locks import default_timeout
from ladle.state.steps import put

CACHE = cf.CACHE
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Say = Callable[[str], None]


@dataclass
class State:
    """The image so far: its index row (None: scratch), config and layer descriptors."""
    row: dict[str, Any] | None
    config: dict[str, Any]
    layers: list[dict[str, Any]]
    args: dict[str, str] = field(default_factory=dict)  # the build arguments in scope

    @property
    def parent(self) -> str:
        return self.row["manifest"] if self.row else "scratch"

    def conf(self) -> dict[str, Any]:
        if not isinstance(self.config.get("config"), dict):
            self.config["config"] = {}
        conf: dict[str, Any] = self.config["config"]
        return conf

    def env(self) -> dict[str, str]:
        out = {}
        for e in self.conf().get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out


def _load(eng: Engine, row: dict[str, Any]) -> State:
    from ladle.images import index
    blobs = images._blobs(eng)
    manifest = index.manifest_of(blobs, row)
    config = json.loads(blobs.read(manifest.config.digest, images.MAX_CONFIG))
    conf = {k: v for k, v in (config.get("config") or {}).items()}
    for key in list(conf):  # one spelling of each key (FreeBSD's images say `cmd`)
        canon = {"cmd": "Cmd", "env": "Env", "entrypoint": "Entrypoint", "user": "User",
                 "workingdir": "WorkingDir"}.get(key.lower())
        if canon and key != canon:
            conf.setdefault(canon, conf.pop(key))
    config["config"] = conf
    return State(row, config, [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                               for d in manifest.layers])


def build(eng: Engine, file: str, tag: str, context: str, build_args: dict[str, str], network: str,
          no_cache: bool, insecure: bool, stdio: tuple[int, int, int] | None, say: Say) -> str:
    from ladle.images import refs
    if eng.dry_run:
        raise UsageError("build has no dry run")
    target = refs.parse(tag)
    if network not in ("none", "inherit"):
        raise UsageError(f"build's --network is none or inherit, not {names.short(network)}")
    ctx = os.path.realpath(context)
    if not os.path.isdir(ctx):
        raise UsageError(f"the build context {names.shown(context)} is not a directory")
    try:
        with open(file, "rb") as f:
            body = f.read(cf.MAX_FILE + 1)
    except FileNotFoundError:
        raise UsageError(f"no Containerfile {names.shown(file)}") from None
    except OSError as e:
        raise UsageError(f"{names.shown(file)}: {e.strerror}") from None
    where = os.path.basename(file)
    steps = cf.parse(body, where)
    froms = stages.precheck(steps, ctx, build_args, where)
    eng.store  # noqa: B018  (initialised)
    for line in buildwork.sweep(eng):
        say(line)
    sources = {value: stages.resolve(eng, value, at, insecure) for value, at in froms.items()}
    with buildwork.registered(eng, images._blobs(eng)) as work:
        state = _steps(eng, steps, where, ctx, build_args, network, no_cache, insecure, stdio, say, work, sources)
    from ladle.images import index
    r = state.row
    assert r is not None
    index.record(eng.store, target, r["digest"], r["manifest"], r["media_type"], r["size"], r["created"], time.time())
    return f"built {target} ({r['manifest']})"


def _steps(eng: Engine, steps: list[cf.Instruction], where: str, ctx: str, build_args: dict[str, str], network: str,
           no_cache: bool, insecure: bool, stdio: tuple[int, int, int] | None, say: Say, work: str,
           sources: dict[str, dict[str, Any]]) -> State:
    """Run the steps in order, stage after stage; the image the last one ends at."""
    pre: dict[str, str] = {}
    state: State | None = None
    done: list[State] = []  # the stages before this one, at their last image
    stage_names: list[str | None] = []
    for n, ins in enumerate(steps, 1):
        label = f"STEP {n}/{len(steps)}: {ins.text}"
        say(label)
        at = f"{where} line {ins.line}"
        if ins.kind == "ARG":
            name, default = cf.arg(ins, at)
            value = build_args.get(name, default)
            if state is None:
                pre[name] = value or ""
                continue
            state.args[name] = value if value is not None else pre.get(name, "")
            continue
        if ins.kind == "FROM":
            if state is not None:
                done.append(state)
            image, stage_name = cf.from_line(ins, pre, at)
            stage_names.append(stage_name)
            state = _from(eng, image, stage_names[:-1], done, insecure)
            continue
        assert state is not None
        source = _source(ins, state, len(done), stage_names, done, sources, at)
        key = _key(eng, state, ins, at, no_cache, ctx, work, source)
        if key.cached is not None:
            say("--> CACHED")
            state = key.cached
            continue
        try:
            if source is not None:
                _stage_from(eng, state, ins, at, key, source)
            state = _step(eng, state, ins, at, key, network, stdio)
        except LadleError as e:
            raise _failed(e, f"{label}: {e}") from None
        finally:
            if key.staged:
                shutil.rmtree(key.staged, ignore_errors=True)
        assert state.row is not None
        say(f"--> {state.row['manifest'][:19]}")
    assert state is not None and state.row is not None  # stages.precheck refused a FROM scratch with nothing after
    return state


@dataclass(frozen=True)
class FromImage:
    """A COPY --from's image: its index row and how messages name it."""
    row: dict[str, Any]
    shown: str


def _source(ins: cf.Instruction, state: State, current: int, stage_names: list[str | None], done: list[State],
            sources: dict[str, dict[str, Any]], at: str) -> FromImage | None:
    """The image a COPY --from reads (None: the context)."""
    if ins.kind != "COPY":
        return None
    value = buildctx.copy_from(ins, {**state.args, **state.env()}, at)
    if value is None:
        return None
    ref = stages.reference(value, current, stage_names, at)
    row = done[ref.stage].row if ref.stage is not None else sources[value]
    assert row is not None  # stages.precheck refused a stage of FROM scratch with nothing after
    return FromImage(row, ref.shown)


def _stage_from(eng: Engine, state: State, ins: cf.Instruction, at: str, key: Key, source: FromImage) -> None:
    """Stage a COPY --from's files (on a cache miss only: its key is the source image's digest)."""
    key.staged = tempfile.mkdtemp(prefix="step-", dir=key.work)
    srcs, _ = buildctx.sources(ins, {**state.args, **state.env()}, at)
    stages.stage_from(eng, source.row, srcs, source.shown, at, key.staged, os.path.basename(key.work))


def _from(eng: Engine, image: str, stage_names: list[str | None], done: list[State], insecure: bool) -> State:
    """A stage's first image: scratch, an earlier stage's last (by name, as Docker: before any
    image of that name), or an image, pulled if missing."""
    if image == "scratch":
        os_name, arch = images.platform()
        return State(None, {"architecture": arch, "os": os_name, "config": {},
                            "rootfs": {"type": "layers", "diff_ids": []}}, [])
    if image.lower() in stage_names:
        before = done[stage_names.index(image.lower())]
        return State(before.row, json.loads(json.dumps(before.config)), list(before.layers))
    names.text("the image", image)
    blobs = images._blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        row = imagepots._find(eng, image, True, insecure, None)
        return _load(eng, row)


@dataclass
class Key:
    digest: str
    cached: State | None
    work: str  # the build's own directory (buildwork)
    staged: str | None = None  # COPY and ADD: the staged files' directory, in `work`


def _key(eng: Engine, state: State, ins: cf.Instruction, at: str, no_cache: bool, ctx: str, work: str,
         source: FromImage | None) -> Key:
    """The step's cache key, and the image it made before if the index still has it; a COPY
    --from's key has its source image's digest, its files staged only if the key misses."""
    doc: dict[str, Any] = {"parent": state.parent, "step": ins.text, "env": state.env()}
    if ins.kind == "RUN":
        doc["args"] = state.args
    staged = None
    if source is not None:
        doc["from"] = source.row["manifest"]
    elif ins.kind in ("COPY", "ADD"):
        staged = tempfile.mkdtemp(prefix="step-", dir=work)
        try:
            doc["files"] = buildctx.stage(ins, {**state.args, **state.env()}, at, ctx, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return Key(digest, None if no_cache else _cached(eng, state, digest), work, staged)


def _cached(eng: Engine, state: State, digest: str) -> State | None:
    """The image a step made before, if the index and the content store still have it whole."""
    rows = eng.store.all("images", name=CACHE, tag=digest)
    if not rows:
        return None
    blobs = images._blobs(eng)
    try:
        found = _load(eng, rows[0])
    except LadleError:
        return None
    if not all(blobs.has(d["digest"]) for d in found.layers):
        return None
    found.args = dict(state.args)
    return found


def _failed(e: LadleError, message: str) -> LadleError:
    try:
        return type(e)(message)
    except TypeError:  # an error with arguments of its own: its kind is enough
        return HostError(message)


def _step(eng: Engine, state: State, ins: cf.Instruction, at: str, key: Key, network: str,
          stdio: tuple[int, int, int] | None) -> State:
    """Apply one step that missed the cache; the image it ends at, recorded under its key."""
    new = State(state.row, json.loads(json.dumps(state.config)), list(state.layers), dict(state.args))
    conf = new.conf()
    env = {**state.args, **state.env()}
    k = ins.kind
    if k in cf.LAYERS:
        return _layer(eng, new, ins, at, key, network, stdio)
    if k == "ENV":
        cur = state.env()
        cur.update(cf.pairs(ins, env, at))
        conf["Env"] = [f"{a}={b}" for a, b in cur.items()]
    elif k == "LABEL":
        conf["Labels"] = {**(conf.get("Labels") or {}), **dict(cf.pairs(ins, env, at))}
    elif k == "WORKDIR":
        path = os.path.normpath(os.path.join(conf.get("WorkingDir") or "/", cf.words(ins.args, env, at)[0]))
        conf["WorkingDir"] = path
        if state.row is not None:  # made if missing, as Docker does: a layer with the directory
            return _layer(eng, new, ins, at, key, network, stdio)
    elif k == "USER":
        conf["User"] = cf.words(ins.args, env, at)[0]
    elif k == "STOPSIGNAL":
        conf["StopSignal"] = cf.words(ins.args, env, at)[0]
    elif k == "HEALTHCHECK":
        conf["Healthcheck"] = cf.healthcheck(ins, at)
    elif k == "SHELL":
        conf["Shell"] = cf.shell(ins, at)
    elif k in ("CMD", "ENTRYPOINT"):
        conf["Cmd" if k == "CMD" else "Entrypoint"] = cf.command(ins, conf.get("Shell"))
        if k == "ENTRYPOINT":
            conf.pop("Cmd", None)  # as Docker: a new entrypoint drops the inherited Cmd
    elif k == "EXPOSE":
        ports: dict[str, Any] = {}
        for p in cf.words(ins.args, env, at):
            port, _, proto = p.partition("/")
            if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise UsageError(f"{at}: EXPOSE takes PORT[/tcp|udp|sctp], not {names.short(p)}")
            ports[f"{int(port)}/{proto or 'tcp'}"] = {}
        conf["ExposedPorts"] = {**(conf.get("ExposedPorts") or {}), **ports}
    elif k == "VOLUME":
        vols = cf.exec_form(ins.args) or cf.words(ins.args, env, at)
        for v in vols:
            if not v.startswith("/") or ".." in v.split("/"):
                raise UsageError(f"{at}: VOLUME takes absolute paths, not {names.short(v)}")
        conf["Volumes"] = {**(conf.get("Volumes") or {}), **{os.path.normpath(v): {} for v in vols}}
    new.config["history"] = [*(new.config.get("history") or []),
                             {"created_by": ins.text, "empty_layer": True}]
    return _record(eng, new, key, ins, None)


def _record(eng: Engine, state: State, key: Key, ins: cf.Instruction, layer: Any) -> State:
    """Store the image (config, manifest) and name it by the step's key."""
    from ladle.images import commit as mk
    from ladle.images import index, refs
    blobs = images._blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        digest, size, created = mk.image(blobs, state.config, state.layers, [layer] if layer else [], ins.text)
        index.record(eng.store, refs.Ref("ladle.build", "cache", key.digest, None), digest, digest, mk.OCI_MANIFEST,
                     size, created, time.time())
    found = _load(eng, eng.store.all("images", name=CACHE, tag=key.digest)[0])
    found.args = state.args
    return found


def _layer(eng: Engine, state: State, ins: cf.Instruction, at: str, key: Key, network: str,
           stdio: tuple[int, int, int] | None) -> State:
    """RUN, COPY, ADD or WORKDIR in a pot on the image `state.row` names; its changes as one new
    layer of the image `state.config` describes."""
    from ladle.engine.run import _attached
    if state.row is None:
        if ins.kind == "RUN":
            raise UsageError(f"{at}: RUN needs an image with a shell: FROM scratch has no files yet")
        assert key.staged is not None
        return _scratch_layer(eng, state, ins, at, key)
    name = f"build-{os.urandom(5).hex()}"
    ref = state.row["name"] + ":" + state.row["tag"] if state.row["tag"] else state.row["manifest"]
    argv = cf.command(ins, state.conf().get("Shell")) if ins.kind == "RUN" else ["/bin/true"]
    made = False
    try:
        imagepots.create(eng, name, ref, argv[1:], argv[0], potnet.request(network), {"persistent": "NO"}, None,
                         pull=False, build=os.path.basename(key.work))
        made = True
        row = eng.pot(name)
        if ins.kind == "RUN":
            if state.args:
                env = {**state.args, **row["env"]}
                if "PATH" not in env:
                    env["PATH"] = DEFAULT_PATH.split("=", 1)[1]
                eng.execute("build", f"pot:{name}", [put("pots", {"name": name}, {**row, "env": env}, row)])
            code = _attached(eng, name, stdio, remove=False).exit_code
            if code != 0:
                raise HostError(f"exited {code}")
        elif ins.kind == "WORKDIR":
            staged = tempfile.mkdtemp(prefix="step-", dir=key.work)
            try:
                for marker in buildcopy.mkdir(eng, name, staged, state.conf()["WorkingDir"]):
                    buildcopy.drop(eng.snap.path(row["layer"]), marker)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        else:
            assert key.staged is not None
            buildcopy.copy_in(eng, name, *_dest(state, ins, at), at, key.staged)
        row = eng.pot(name)
        blobs = images._blobs(eng)
        with blobs.lock(shared=True, timeout=default_timeout()):
            (layer,) = changes.layers(eng, blobs, row, state.row, None)
        return _record(eng, state, key, ins, layer)
    finally:
        if made:
            pots.destroy(eng, name, recursive=False, force=True)


def _dest(state: State, ins: cf.Instruction, at: str) -> tuple[str, bool]:
    """COPY's destination in the image (relative to the workdir) and whether it is a directory."""
    srcs, dest = buildctx.sources(ins, {**state.args, **state.env()}, at)
    as_dir = dest.endswith("/") or len(srcs) > 1
    path = os.path.normpath(os.path.join(state.conf().get("WorkingDir") or "/", dest))
    return path, as_dir


def _scratch_layer(eng: Engine, state: State, ins: cf.Instruction, at: str, key: Key) -> State:
    """COPY onto nothing: the staged files laid out at their destination, as a whole-tree layer."""
    from ladle.images import commit as mk
    assert key.staged is not None
    dest, as_dir = _dest(state, ins, at)
    tree = os.path.join(key.staged, "tree")
    os.mkdir(tree, 0o755)
    for n in sorted((x for x in os.listdir(key.staged) if x.isdigit()), key=int):
        (entry,) = os.listdir(os.path.join(key.staged, n))
        src = os.path.join(key.staged, n, entry)
        is_dir = os.path.isdir(src) and not os.path.islink(src)
        rel = dest.strip("/")
        if not is_dir and (as_dir or dest == "/"):
            rel = os.path.join(rel, entry)
        parent = buildctx.tree_dir(tree, rel if is_dir else os.path.dirname(rel), at)
        moves = [(os.path.join(src, c), os.path.join(parent, c)) for c in os.listdir(src)] if is_dir else \
            [(src, os.path.join(parent, os.path.basename(rel)))]
        for a, b in moves:
            if os.path.lexists(b):
                raise UsageError(f"{at}: two sources give {names.shown('/' + os.path.relpath(b, tree))}")
            os.rename(a, b)
    blobs = images._blobs(eng)
    with blobs.lock(shared=True, timeout=default_timeout()):
        layer = mk.store_layer(blobs, tree, overlay=False)
    return _record(eng, state, key, ins, layer)
