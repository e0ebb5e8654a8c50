"""Multi-stage builds: `FROM IMAGE AS NAME` names a stage, a later `FROM NAME` starts from its
image and `COPY --from=NAME|INDEX|IMAGE` copies files out of a stage's final image (or any image,
pulled if missing) instead of the build context.

Stage names are matched without regard to case, as Docker does; a reference must name an earlier
stage (never its own or a later one), else it is an image. The files are read from a temporary
pot on the source image with copy-out, which resolves every path inside the pot's root and never
follows a link out of it: a source whose `..` climbs above the root is refused before that, a link
named as the source is followed inside the stage (as Docker does), and links inside a copied
directory are copied as links. The pot carries the build's id (engine/buildwork), so a killed
build's one is taken by the next build or `ladle gc`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from ladle import names
from ladle.engine import fscomps, imagepots, pots
from ladle.engine.core import Engine
from ladle.errors import LadleError, UsageError
from ladle.images import buildctx
from ladle.images import containerfile as cf

MAX_LINKS = 40  # as the kernel's limit on links followed in one lookup


@dataclass(frozen=True)
class Reference:
    """Where a COPY --from reads: an earlier stage (its index) or an image (its reference)."""
    stage: int | None
    image: str | None
    shown: str  # "stage NAME" or "image REF", for messages


def names_of(steps: list[cf.Instruction], pre: dict[str, str], where: str) -> list[str | None]:
    """Each stage's name (None when it has none); a name given twice is refused."""
    out: list[str | None] = []
    for ins in steps:
        if ins.kind != "FROM":
            continue
        at = f"{where} line {ins.line}"
        _, name = cf.from_line(ins, pre, at)
        if name is not None and name in out:
            raise UsageError(f"{at}: stage name {name} is already the name of stage {out.index(name)}")
        out.append(name)
    return out


def reference(value: str, current: int, stage_names: list[str | None], at: str) -> Reference:
    """What `COPY --from=value` in stage `current` reads from; a reference to the stage itself
    or a later one is refused (Docker builds stages in order)."""
    if value.isascii() and value.isdigit():
        index = int(value)
        if index >= len(stage_names):
            raise UsageError(f"{at}: COPY --from={value}: there is no stage {index} (stages count from 0)")
    elif value.lower() in stage_names:
        index = stage_names.index(value.lower())
    else:
        from ladle.images import refs
        try:
            refs.parse(value)
        except UsageError as e:
            raise UsageError(f"{at}: COPY --from={names.shown(value)} names no earlier stage, and {e}") from None
        return Reference(None, value, f"image {value}")
    if index == current:
        raise UsageError(f"{at}: COPY --from={value} names the stage it is in")
    if index > current:
        raise UsageError(f"{at}: COPY --from={value} names a later stage: a stage copies from earlier ones only")
    return Reference(index, None, f"stage {stage_names[index] or index}")


def resolve(eng: Engine, value: str, at: str, insecure: bool) -> dict[str, Any]:
    """The index row of a COPY --from image, pulled if missing; a failure names the line."""
    try:
        return imagepots._find(eng, value, True, insecure, None)
    except LadleError as e:
        raise UsageError(f"{at}: COPY --from={names.shown(value)} names no earlier stage, and {e}") from None


def stage_from(eng: Engine, row: dict[str, Any], srcs: list[str], what: str, at: str, staged: str,
               build: str) -> None:
    """Copy each source out of the image `row` into `staged/N/` (as buildctx.stage lays out the
    context's), through a temporary pot on that image, destroyed whatever happens."""
    paths = [buildctx.in_stage(s, what, at) for s in srcs]
    name = f"build-{os.urandom(5).hex()}"
    ref = f"{row['name']}:{row['tag']}" if row["tag"] else f"{row['name']}@{row['digest']}"
    made = False
    try:
        imagepots.create(eng, name, ref, [], "/bin/true", "none", {"persistent": "NO"}, None, pull=False,
                         build=build)
        made = True
        for n, (src, path) in enumerate(zip(srcs, paths, strict=True)):
            top = os.path.join(staged, str(n))
            os.mkdir(top, 0o700)
            _copy_out(eng, name, src, path, top, what)
    finally:
        if made:
            pots.destroy(eng, name, recursive=False, force=True)


def _copy_out(eng: Engine, pot: str, src: str, path: str, top: str, what: str) -> None:
    """Copy `path` out of the pot into `top`, following a link at `path` itself inside the pot
    (its target read on the host as a string, then copied out in turn); the entry is named as
    the source. Its errors go under the step's label (build.py), which names the step."""
    first = path
    for _ in range(MAX_LINKS):
        try:
            fscomps.copy(eng, pot, "out", top, path, False, keep_setuid=True)
        except UsageError as e:
            if "no such file" in str(e):
                raise UsageError(f"source {names.shown(src)} does not exist in {what}") from None
            raise UsageError(f"source {names.shown(src)} of {what}: {e}") from None
        (entry,) = os.listdir(top)
        got = os.path.join(top, entry)
        if not os.path.islink(got):
            os.rename(got, os.path.join(top, os.path.basename(first)))
            return
        target = os.readlink(got)
        os.unlink(got)
        # resolved as the pot resolves it: an absolute target from its root, `..` stopping there
        path = "/" + os.path.normpath(os.path.join(os.path.dirname(path), target)).lstrip("/")
        if path == "/":
            raise UsageError(f"source {names.shown(src)} of {what} is a link to its root: name what to copy")
    raise UsageError(f"source {names.shown(src)} of {what}: too many levels of links")


def precheck(steps: list[cf.Instruction], ctx: str, build_args: dict[str, str], where: str) -> dict[str, str]:
    """What can be checked before anything is made: arguments, stages and their references,
    COPY sources (as far as the file's own ARGs and ENVs expand them) inside the context or a
    stage, HEALTHCHECK and SHELL; the images COPY --from names (each with the first line naming
    it), to resolve before the build starts."""
    env: dict[str, str] = {}
    for n, ins in enumerate(steps):
        if ins.kind == "FROM" and ins.args.split()[0] == "scratch" and \
                all(i.kind == "ARG" for i in itertools.takewhile(lambda i: i.kind != "FROM", steps[n + 1:])):
            raise UsageError(f"{where} line {ins.line}: FROM scratch and nothing added: there is no image to name")
    first = next(i for i, ins in enumerate(steps) if ins.kind == "FROM")
    pre = {}
    for ins in steps[:first]:
        name, default = cf.arg(ins, f"{where} line {ins.line}")
        pre[name] = build_args.get(name, default or "")
    stage_names = names_of(steps, pre, where)
    current = -1
    images: dict[str, str] = {}
    for ins in steps:
        at = f"{where} line {ins.line}"
        if ins.kind == "FROM":
            current += 1
            env = dict(pre)
        elif ins.kind == "ARG":
            name, default = cf.arg(ins, at)
            env[name] = build_args.get(name, default or "")
        elif ins.kind in ("ENV", "LABEL"):
            pairs = cf.pairs(ins, env, at)
            if ins.kind == "ENV":
                env.update(pairs)
        elif ins.kind in ("COPY", "ADD"):
            srcs, _ = buildctx.sources(ins, env, at)
            value = buildctx.copy_from(ins, env, at)
            ref = reference(value, current, stage_names, at) if value is not None else None
            for s in srcs:
                if ref is None:
                    buildctx.inside(ctx, s, at)
                else:
                    buildctx.in_stage(s, ref.shown, at)
            if ref is not None and ref.image is not None:
                images.setdefault(ref.image, at)
        elif ins.kind == "HEALTHCHECK":
            cf.healthcheck(ins, at)
        elif ins.kind == "SHELL":
            cf.shell(ins, at)
        elif ins.kind in ("USER", "WORKDIR", "STOPSIGNAL") and len(cf.words(ins.args, env, at)) != 1:
            raise UsageError(f"{at}: {ins.kind} takes one word")
    return images
