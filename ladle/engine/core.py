"""The engine context: configuration, state store, storage backend, host driver and executor.

An `Engine` serves one call of the library (one CLI command, or one `Client` method on one
thread). Everything is opened lazily, so `ladle ls` pays for the state store and nothing else. It
never prints: in a dry run the plans' commands are collected in `lines`, and the verbs return
what they did as data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ladle import names
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
    from ladle.supervise.client import MonitorClient


class Engine:
    """One call's view of a host."""

    def __init__(self, cfg: Config, *, dry_run: bool = False, runner: Runner | None = None,
                 store: Callable[[], Store] | None = None,
                 monitor: Callable[[], MonitorClient] | None = None) -> None:
        self.cfg = cfg
        self.dry_run = dry_run
        self.lines: list[str] = []
        self._store = store
        self._monitor = monitor
        if runner is None and cfg.host != this_host() and not dry_run:
            raise UsageError(f"this is a {this_host()} host: --host {cfg.host} needs --dry-run")
        # A dry run planned for another host runs no host command: run records are trusted.
        self.offline = runner is None and cfg.host != this_host()
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

    @property
    def db_path(self) -> str:
        return os.path.join(self.root, "ladle.db")

    @cached_property
    def store(self) -> Store:
        if not os.path.exists(self.db_path):
            raise NotFound(f"ladle is not initialised in {names.shown(self.root)}: run 'ladle init' first")
        return self._store() if self._store else Store(self.db_path)

    @cached_property
    def host(self) -> Host:
        return open_host(self.cfg.host, self.runner, self.root, self.cfg.arch, self.offline)

    @cached_property
    def snap(self) -> Snapshotter:
        from ladle.storage import open_backend
        kind = self.store.setting("storage", "dir") or "dir"
        return open_backend(kind, self.root, self.store, self.store.setting("dataset"), self.runner, self.cfg.host,
                            self.offline)

    def monitor(self) -> MonitorClient:
        """The host's monitor, started on demand (the steps that run processes ask it)."""
        if self._monitor is not None:
            return self._monitor()
        if "_own_monitor" not in self.__dict__:
            from ladle.supervise.client import MonitorClient
            self.__dict__["_own_monitor"] = MonitorClient(self.root, self.host.monitor_argv())
        client: MonitorClient = self.__dict__["_own_monitor"]
        return client

    @cached_property
    def ctx(self) -> Context:
        from ladle.plan.steps import Context
        return Context(self.runner, self.store, self.monitor)

    # Running plans -----------------------------------------------------------------------------

    def execute(self, verb: str, subject: str, steps: list[Step], on_crash: OnCrash = "undo") -> None:
        from ladle.plan.executor import Executor
        self.lines += Executor(self.ctx, dry_run=self.dry_run).run(verb, subject, steps, on_crash)

    def lock(self, name: str) -> AbstractContextManager[None]:
        """The lock for one object ('pot-web', 'base-busybox', 'global'); a no-op in dry runs."""
        if self.dry_run:
            return nullcontext()
        from ladle.state import locks
        return locks.hold(self.root, name)

    # Rows ------------------------------------------------------------------------------------

    def pot(self, name: str) -> dict[str, Any]:
        row = self.store.get("pots", name=name)
        if row is None:
            raise NotFound(f"pot {name} does not exist")
        row["env"] = json.loads(row["env"])
        row["attrs"] = json.loads(row["attrs"])
        row["net"] = json.loads(row["net"])
        row["life"] = json.loads(row.get("life") or "{}")
        row["image"] = json.loads(row.get("image") or "{}")
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
