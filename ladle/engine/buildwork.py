"""What a running build owns, so that what a killed one left can be taken: its directory
`<root>/builds/<id>` (its steps' staged files), held under the lock `build-<id>` while it runs,
and its steps' pots, whose `image` column names the build (`"build": id`).

A build killed with SIGKILL in the middle of a step leaves its directory, the step's pot (its
layer, run directory, log; running still if RUN was, until its command ends) and whatever the
step's own plans had half done (the intent log's, repaired by `gc.recover`). `sweep`, run by
`ladle gc` and at the start of every build, takes the lock of each build directory without
waiting: a live build holds it, so it is left alone; a dead one's pots are destroyed (stopped
first) and its directory removed. The cache rows of the steps it finished stay: they are cache.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ladle.engine.core import Engine
from ladle.errors import Busy
from ladle.plan.steps import RemoveTree
from ladle.state import locks
from ladle.state.locks import default_timeout

if TYPE_CHECKING:
    from ladle.images.blobs import BlobStore

BUILDS = "builds"
_ID = re.compile(r"[0-9a-f]{10}")


def _lock(build: str) -> str:
    return locks.subject_lock(f"build:{build}")


def _lock_file(eng: Engine, build: str) -> str:
    return os.path.join(eng.root, "locks", _lock(build) + ".lock")


@contextlib.contextmanager
def registered(eng: Engine, blobs: BlobStore) -> Iterator[str]:
    """A new build's directory, under its lock for as long as the block runs; removed after.

    It is made while the content store is held shared, as `image prune --build-cache` checks for
    live builds with the store held alone: a build is either seen live there or starts after the
    cache went."""
    build = os.urandom(5).hex()
    work = os.path.join(eng.root, BUILDS, build)
    with contextlib.ExitStack() as stack:
        with blobs.lock(shared=True, timeout=default_timeout()):
            stack.enter_context(locks.hold(eng.root, _lock(build), timeout=0))
            os.makedirs(os.path.dirname(work), mode=0o700, exist_ok=True)
            os.mkdir(work, 0o700)
        try:
            yield work
        finally:
            RemoveTree(work).apply(eng.ctx)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_lock_file(eng, build))  # held still: whoever opens it after finds nothing to do


def _builds(eng: Engine) -> list[str]:
    try:
        return sorted(n for n in os.listdir(os.path.join(eng.root, BUILDS)) if _ID.fullmatch(n))
    except FileNotFoundError:
        return []


def live(eng: Engine) -> list[str]:
    """The builds running now (their lock is held)."""
    out = []
    for build in _builds(eng):
        try:
            with locks.hold(eng.root, _lock(build), timeout=0):
                pass
        except Busy:
            out.append(build)
    return out


def sweep(eng: Engine) -> list[str]:
    """Remove what killed builds left (see the module's docstring); one line per build."""
    from ladle.engine import pots
    out = []
    for build in _builds(eng):
        work = os.path.join(eng.root, BUILDS, build)
        try:
            with locks.hold(eng.root, _lock(build), timeout=0):
                if not os.path.lexists(work):  # it ended between the listing and the lock
                    continue
                rows = eng.store.db.execute("SELECT name FROM pots WHERE json_extract(image, '$.build') = ?",
                                            (build,)).fetchall()
                for (name,) in rows:
                    pots.destroy(eng, name, recursive=False, force=True)
                eng.execute("gc", f"build:{build}", [RemoveTree(work)], on_crash="finish")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_lock_file(eng, build))
        except Busy:
            continue
        pots_made = "".join(f", destroyed its pot {n}" for (n,) in rows)
        out.append(f"cleaned up after killed build {build}: removed its staged files{pots_made}")
    return out
