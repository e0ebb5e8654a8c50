"""How a build step's staged files (engine/build.py, buildctx, stages) go into its pot: with
copy-in, which never follows a link of the source and makes missing directories inside the pot,
following the pot's own links there; directories it makes get a marker file, removed after."""

from __future__ import annotations

import os

from ladle import names
from ladle.engine import fscomps
from ladle.engine.core import Engine
from ladle.errors import UsageError


def copy_in(eng: Engine, name: str, dest: str, as_dir: bool, at: str, staged: str) -> None:
    """Copy the staged sources in with copy-in, whose source is never a link (copy-in follows a
    host link at the top: the operator's, not the context's): a directory goes in whole under
    DEST's name, its links copied as links; files into DEST, made a directory first when it is
    one, or to DEST itself. Missing directories are made by copy-in, inside the pot, following
    the pot's own links there."""
    made: list[str] = []
    for n in sorted(os.listdir(staged), key=int):
        (entry,) = os.listdir(os.path.join(staged, n))
        src = os.path.join(staged, n, entry)
        if os.path.isdir(src):
            if dest == "/":
                for child in sorted(os.listdir(src)):
                    if os.path.islink(os.path.join(src, child)):
                        raise UsageError(f"{at}: {names.shown(entry + '/' + child)} is a link: a directory with"
                                         " links at its top is not copied to /")
                    fscomps.copy(eng, name, "in", os.path.join(src, child), "/", False)
                continue
            named = os.path.join(staged, n, os.path.basename(dest))
            os.rename(src, named)
            parent = os.path.dirname(dest)
            made += mkdir(eng, name, staged, parent)
            fscomps.copy(eng, name, "in", named, parent, False)
        elif as_dir:
            made += mkdir(eng, name, staged, dest)
            fscomps.copy(eng, name, "in", src, dest, False)
        else:
            fscomps.copy(eng, name, "in", src, dest, True)
    for marker in made:
        drop(eng.snap.path(eng.pot(name)["layer"]), marker)


def mkdir(eng: Engine, name: str, staged: str, path: str) -> list[str]:
    """Make directory `path` in the pot (copy-in's create-parents, with a marker file copied into
    it and removed after); the marker's name."""
    if path == "/":
        return []
    marker = f".ladle-build-{os.urandom(6).hex()}"
    open(os.path.join(staged, marker), "x").close()
    fscomps.copy(eng, name, "in", os.path.join(staged, marker), os.path.join(path, marker), True)
    return [marker]


def drop(upper: str, marker: str) -> None:
    """Remove the marker from the pot's upper directory or tree (not running: nothing moves
    under us)."""
    for dirpath, _, filenames in os.walk(upper):
        if marker in filenames:
            os.unlink(os.path.join(dirpath, marker))
            return
