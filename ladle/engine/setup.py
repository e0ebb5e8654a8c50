"""`ladle init`: the state root, its database and the storage backend."""

from __future__ import annotations

import os
import re

from ladle import names
from ladle.engine.core import Engine
from ladle.errors import UsageError
from ladle.plan.executor import Executor
from ladle.plan.steps import Context, MakeDir, Step
from ladle.state.steps import put
from ladle.state.store import Store
from ladle.storage import BACKENDS, open_backend

_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9][A-Za-z0-9_.:-]*)*")
SUBDIRS = ("locks", "logs", "run", "cache")


def init(eng: Engine, storage: str, dataset: str | None, force: bool = False) -> str:
    """Create what is missing; refuse to switch an initialised root to another backend, or to
    take a ZFS dataset that another root owns (unless `force`)."""
    if storage not in BACKENDS:
        raise UsageError(f"unknown storage {storage!r} (choose from {', '.join(BACKENDS)})")
    if storage == "zfs" and not dataset:
        raise UsageError("--storage zfs needs --dataset POOL/PATH")
    if dataset and storage != "zfs":
        raise UsageError("--dataset is only for --storage zfs")
    if dataset and (not _DATASET.fullmatch(dataset) or "/" not in dataset):
        raise UsageError(f"invalid dataset {dataset!r}: expected POOL/PATH")
    root = eng.root
    if os.path.lexists(root) and not os.path.isdir(root):
        raise UsageError(f"state root {names.shown(root)} is not a directory")
    wanted = [*_missing_ancestors(root), root, *(os.path.join(root, d) for d in SUBDIRS)]
    dirs: list[Step] = [MakeDir(p, 0o700) for p in wanted if eng.offline or not os.path.isdir(p)]
    db = os.path.join(root, "ladle.db")
    existing = Store(db) if os.path.exists(db) else None
    have = existing.setting("storage") if existing else None
    if existing and have and (have != storage or existing.setting("dataset") != dataset):
        had = existing.setting("dataset")
        raise UsageError(f"{root} is already initialised with {have} storage" + (f" on {had}" if had else ""))
    if existing and not eng.dry_run:
        _repair(eng, existing)
    # The storage is planned before anything new is made: it may refuse (a dataset another root
    # owns). Its plan reads no rows, so an empty store serves.
    backend = open_backend(storage, root, Store(":memory:"), dataset, eng.runner, eng.cfg.host, eng.offline)
    storage_steps = backend.init_steps(eng.offline, force)
    # The directories come before the database that would log them; a dry run plans against an
    # empty in-memory store.
    eng.lines += Executor(Context(eng.runner, None), dry_run=eng.dry_run).run("init", "global", dirs)
    store = existing or Store(":memory:" if eng.dry_run else db)
    eng.__dict__["store"] = store
    steps: list[Step] = []
    for key, value in (("storage", storage), ("dataset", dataset), ("host", eng.cfg.host)):
        if value is not None and store.setting(key) != value:
            steps.append(put("settings", {"key": key}, {"key": key, "value": value}, None))
    steps += storage_steps
    with eng.lock("global"):
        eng.execute("init", "global", steps)
    return f"ladle initialised in {root} ({storage} storage{' on ' + dataset if dataset else ''})"


def _repair(eng: Engine, store: Store) -> None:
    """Repair an interrupted operation (an init killed half-way) before planning what is missing:
    repaired later, its undo would remove what this init makes again (the storage tree)."""
    from ladle import _log
    from ladle.engine.gc import recover

    eng.__dict__["store"] = store
    for line in recover(eng):
        _log.info(line)


def _missing_ancestors(path: str) -> list[str]:
    missing = []
    parent = os.path.dirname(path)
    while parent != os.path.dirname(parent) and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return missing[::-1]
