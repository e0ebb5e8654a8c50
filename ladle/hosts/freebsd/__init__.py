"""The FreeBSD host driver: pots are jails with explicit `jail -c` parameters, mounts are nullfs.

Everything that changes the host is a plan step that renders its exact commands (`--dry-run`
prints them on any host, tests compare them with golden files and check them against the
FreeBSD manual pages) and runs them through the runner. Public API:

- `FreeBSDHost` (the `Host` implementation),
- `attr_defaults`, `check_attr`, `expand_attr` (pot attributes, `jailparams`),
- `canonical_release`, `release_base_steps` (bases, `bases`),
- `start_plan`, `stop_plan`, `copy_plan`, `main_argv`, `exec_argv` (plans, `plans`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from ladle.hosts.base import Host, RunRecord, RuntimeSpec
from ladle.hosts.freebsd import jailparams, plans
from ladle.hosts.freebsd.bases import DEFAULT_ARCH, DEFAULT_MIRROR, canonical_release, release_base_steps
from ladle.hosts.freebsd.jailparams import attr_defaults, check_attr, expand_attr
from ladle.hosts.freebsd.plans import copy_plan, exec_argv, main_argv, start_plan, stop_plan

if TYPE_CHECKING:
    from ladle.plan.runner import Runner
    from ladle.plan.steps import Step
    from ladle.storage.snapshotter import Mount

__all__ = ["FreeBSDHost", "attr_defaults", "canonical_release", "check_attr", "copy_plan", "exec_argv",
           "expand_attr", "main_argv", "release_base_steps", "start_plan", "stop_plan"]


class FreeBSDHost(Host):
    """Pots as FreeBSD jails. `arch` is the release architecture for bases (hw.machine)."""

    name = "freebsd"

    def __init__(self, runner: Runner, root: str, arch: str = DEFAULT_ARCH) -> None:
        super().__init__(runner, root)
        self.arch = arch

    # Attributes --------------------------------------------------------------------------------

    def attr_defaults(self) -> dict[str, str]:
        return jailparams.attr_defaults()

    def check_attr(self, name: str, value: str) -> str:
        return jailparams.check_attr(name, value)

    def canonical_release(self, release: str) -> str:
        return canonical_release(release)

    def expand_attr(self, name: str, value: str) -> dict[str, str]:
        """The attributes to store for name=value (`sysvipc` sets sysvshm, sysvsem and sysvmsg)."""
        return jailparams.expand_attr(name, value)

    # Bases -------------------------------------------------------------------------------------

    def release_base_steps(self, release: str, dest: str, cache: str, mirror: str) -> list[Step]:
        return release_base_steps(release, dest, cache, mirror or DEFAULT_MIRROR, self.arch)

    # Life cycle ----------------------------------------------------------------------------------

    def start_plan(self, spec: RuntimeSpec) -> list[Step]:
        return plans.start_plan(spec)

    def stop_plan(self, spec: RuntimeSpec, run: RunRecord) -> list[Step]:
        return plans.stop_plan(spec, run)

    def run_foreground(self, spec: RuntimeSpec, *, log: bool) -> int:
        """Set the pot up as `start` does, run its command attached to this terminal (with `log`,
        its output is also appended to the log, stderr merged into stdout), then tear it down."""
        from ladle.hosts.freebsd import spawn
        from ladle.hosts.freebsd.steps import JailCommandStart
        from ladle.plan.executor import Executor, finish
        from ladle.plan.steps import Context

        ctx = Context(self.runner)
        steps = plans.start_plan(spec)
        main = steps.pop()
        assert isinstance(main, JailCommandStart)
        Executor(ctx).run("run", f"pot:{spec.name}", steps)
        try:
            proc = subprocess.Popen(main.argv, stdout=subprocess.PIPE if log else None,
                                    stderr=subprocess.STDOUT if log else None)
            spawn.wait_attached(proc, spec.name)
            for argv in main.argvs():
                self.runner.run(argv)
            if log and proc.stdout is not None:
                with open(spec.log_path, "ab") as f:
                    while chunk := os.read(proc.stdout.fileno(), 65536):
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.buffer.flush()
                        f.write(chunk)
            return proc.wait()
        finally:
            for problem in finish(ctx, plans.stop_plan(spec, None)):
                print(f"ladle: warning: {problem}", file=sys.stderr)

    def exec(self, spec: RuntimeSpec, run: RunRecord, argv: list[str], *, tty: bool,
             env: dict[str, str]) -> int:
        """Interactive: the command has our terminal, so it runs directly, not through the runner."""
        return subprocess.call(exec_argv(spec, argv, env))

    def exec_render(self, spec: RuntimeSpec, argv: list[str], *, tty: bool) -> list[str]:
        import shlex
        return [shlex.join(exec_argv(spec, argv, {}))]

    def alive(self, run: RunRecord) -> bool:
        """A pot runs while its jail exists (a persistent pot's jail outlives its command)."""
        from ladle.hosts.freebsd.steps import jail_exists
        return jail_exists(self.runner, run.pot)

    def live_mount_plan(self, spec: RuntimeSpec, run: RunRecord, mount: Mount) -> list[Step]:
        from ladle.hosts.freebsd.steps import NullfsMount
        return [NullfsMount(mount.source, plans.jail_root(spec)[0], mount.target, mount.readonly)]

    def live_unmount_plan(self, spec: RuntimeSpec, run: RunRecord, target: str) -> list[Step]:
        from ladle.hosts.freebsd.steps import JailUnmount
        return [JailUnmount(plans.jail_root(spec)[0], target)]

    # Files -------------------------------------------------------------------------------------

    def copy_plan(self, spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str,
                  pot_path: str, create_parents: bool) -> list[Step]:
        return plans.copy_plan(spec, run, direction, host_path, pot_path, create_parents)

