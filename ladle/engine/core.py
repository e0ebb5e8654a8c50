"""The engine context: configuration, state store, storage backend, host driver and executor.

Everything is opened lazily, so `ladle ls` pays for the state store and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any, TextIO

from ladle.config import Config
from ladle.errors import NotFound, UsageError
from ladle.hosts import open_host, this_host
from ladle.state.store import Store

if TYPE_CHECKING:
    from ladle.hosts.base import Host
    from ladle.plan.executor import OnCrash
    from ladle.plan.runner import Runner
    from ladle.plan.steps import Context, Step
    from ladle.storage.snapshotter import Snapshotter


class Engine:
    """One ladle command's view of a host."""

    def __init__(self, cfg: Config, *, dry_run: bool = False, runner: Runner | None = None,
                 out: TextIO | None = None) -> None:
        self.cfg = cfg
        self.dry_run = dry_run
        self.out = out or sys.stdout
        if runner is None and cfg.host != this_host() and not dry_run:
            raise UsageError(f"this is a {this_host()} host: --host {cfg.host} needs --dry-run")
        if runner is not None:
            self.__dict__["runner"] = runner

    # Lazily opened parts ---------------------------------------------------------------------

    @cached_property
    def runner(self) -> Runner:
        from ladle.plan.runner import SubprocessRunner
        return SubprocessRunner()

    @property
    def root(self) -> str:
        return self.cfg.root

    @cached_property
    def store(self) -> Store:
        path = os.path.join(self.root, "ladle.db")
        if not os.path.exists(path):
            raise NotFound(f"ladle is not initialised in {self.root}: run 'ladle init' first")
        return Store(path)

    @cached_property
    def host(self) -> Host:
        return open_host(self.cfg.host, self.runner, self.root, self.cfg.arch)

    @cached_property
    def snap(self) -> Snapshotter:
        from ladle.storage import open_backend
        kind = self.store.setting("storage", "dir") or "dir"
        return open_backend(kind, self.root, self.store, self.store.setting("dataset"), self.runner)

    @cached_property
    def ctx(self) -> Context:
        from ladle.plan.steps import Context
        return Context(self.runner, self.store)

    # Running plans -----------------------------------------------------------------------------

    def execute(self, verb: str, subject: str, steps: list[Step], on_crash: OnCrash = "undo") -> None:
        from ladle.plan.executor import Executor
        Executor(self.ctx, dry_run=self.dry_run, out=self.out).run(verb, subject, steps, on_crash)

    def lock(self, name: str) -> Any:
        """The lock for one object ('pot-web', 'base-busybox', 'global'); a no-op in dry runs."""
        if self.dry_run:
            from contextlib import nullcontext
            return nullcontext()
        from ladle.state import locks
        return locks.hold(self.root, name)

    def say(self, message: str) -> None:
        """A confirmation for the user; silent in dry runs, where only the commands are printed."""
        if not self.dry_run:
            print(message, file=self.out)

    # Rows ------------------------------------------------------------------------------------

    def pot(self, name: str) -> dict[str, Any]:
        row = self.store.get("pots", name=name)
        if row is None:
            raise NotFound(f"pot {name} does not exist")
        row["env"] = json.loads(row["env"])
        row["attrs"] = json.loads(row["attrs"])
        return row

    def base(self, name: str) -> dict[str, Any]:
        row = self.store.get("bases", name=name)
        if row is None:
            raise NotFound(f"base {name} does not exist (see 'ladle bases')")
        return row

    def fscomp(self, name: str) -> dict[str, Any]:
        row = self.store.get("fscomps", name=name)
        if row is None:
            raise NotFound(f"fscomp {name} does not exist")
        return row
