"""FreeBSD plan steps: nullfs and tmpfs mounts, jail creation and removal, the supervised command,
base downloads. Each renders the exact commands it runs through the runner, and knows its undo.

Paths inside a pot are resolved with `resolve_in_root` when a step applies, so a symbolic link in
the pot's tree can never make a mount (or unmount) land outside the pot's root on the host; the
rendering shows the paths before resolution, which are the same unless the pot holds such a link.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from ladle import _log
from ladle.errors import CommandFailed, HostError, UsageError
from ladle.hosts.freebsd.jailparams import stop_config
from ladle.paths import resolve_in_root
from ladle.plan.runner import Runner
from ladle.plan.steps import Cmd, Command, Context, Step


def host_path(root: str, target: str) -> str:
    """Where in-pot path `target` is on the host, before resolving links ('/' is the root)."""
    return root if target == "/" else root.rstrip("/") + target


def mount_table(runner: Runner) -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount, from `mount -p` (fstab(5) format)."""
    rows = []
    for line in runner.run(["mount", "-p"]).splitlines():
        fields = line.split()
        if len(fields) >= 3:
            rows.append((fields[1], fields[2]))
    return rows


def mounted(runner: Runner) -> set[str]:
    """Mount points of the host."""
    return {point for point, _ in mount_table(runner)}


def jail_exists(runner: Runner, name: str) -> bool:
    return bool(runner.run(["jls", "-j", name, "jid"], check=False).strip())


def jails(runner: Runner) -> set[str]:
    """The names of every jail on the host, from one `jls name` (jls prints the parameter per jail)."""
    return set(runner.run(["jls", "name"], check=False).split())


class _MountStep(Command):
    """Shared by the mounts: make the mount point if it is missing, mount, undo by unmounting."""

    root: str
    target: str

    @property
    def path(self) -> str:
        return host_path(self.root, self.target)

    def mount_argv(self, path: str) -> list[str]:
        raise NotImplementedError

    def argvs(self) -> list[list[str]]:
        return [["mkdir", "-p", self.path], self.mount_argv(self.path)]

    def apply(self, ctx: Context) -> None:
        path = resolve_in_root(self.root, self.target)
        if self.target != "/" and path == os.path.abspath(self.root):
            raise HostError(f"mount point {self.target} leads to the pot's root directory (through a link in the pot)")
        if not os.path.isdir(path):  # mkdir -p is skipped when the directory exists (ro roots)
            ctx.runner.run(["mkdir", "-p", path])
        ctx.runner.run(self.mount_argv(path))

    def inverse(self) -> list[Step]:
        return [JailUnmount(self.root, self.target)]


@dataclass
class NullfsMount(_MountStep):
    """`mount_nullfs [-o ro] SOURCE DEST`: a host tree seen at `target` inside the pot."""

    source: str
    root: str
    target: str
    readonly: bool = False
    remove_dir: bool = False  # a temporary mount point: the undo removes it too

    def mount_argv(self, path: str) -> list[str]:
        return ["mount_nullfs", *(["-o", "ro"] if self.readonly else []), self.source, path]

    def inverse(self) -> list[Step]:
        return [JailUnmount(self.root, self.target), *([JailRmdir(self.root, self.target)] if self.remove_dir else [])]


@dataclass
class JailTmpfsMount(_MountStep):
    """`mount -t tmpfs tmpfs DEST`: a fresh, memory-backed /tmp at every start (pot does the same)."""

    root: str
    target: str = "/tmp"

    def mount_argv(self, path: str) -> list[str]:
        return ["mount", "-t", "tmpfs", "tmpfs", path]


@dataclass
class JailUnmount(Command):
    """`umount DEST`; a mount that is already gone is not an error (stop must work in recovery)."""

    root: str
    target: str

    def argvs(self) -> list[list[str]]:
        return [["umount", host_path(self.root, self.target)]]

    def apply(self, ctx: Context) -> None:
        path = resolve_in_root(self.root, self.target)
        try:
            ctx.runner.run(["umount", path])
        except CommandFailed:
            points = mounted(ctx.runner)
            if path in points or os.path.realpath(path) in points:
                raise


@dataclass
class JailRmdir(Command):
    """`rmdir DEST`: remove an empty directory we made (a copy's temporary mount point)."""

    root: str
    target: str

    def argvs(self) -> list[list[str]]:
        return [["rmdir", host_path(self.root, self.target)]]

    def apply(self, ctx: Context) -> None:
        path = resolve_in_root(self.root, self.target)
        try:
            ctx.runner.run(["rmdir", path])
        except CommandFailed:
            if os.path.lexists(path):
                raise


@dataclass
class JailCopyHostFile(Command):
    """`cp -f SOURCE DEST`: a host file into the pot before it starts (/etc/resolv.conf, which
    pot copies at every start). The directory is resolved inside the pot's root; cp -f removes
    what is at the name and creates a new file, so a symbolic link the pot planted there is
    replaced, never followed. Skipped when the pot has no such directory, as pot does."""

    source: str
    root: str
    target: str

    def argvs(self) -> list[list[str]]:
        return [["cp", "-f", self.source, host_path(self.root, self.target)]]

    def apply(self, ctx: Context) -> None:
        parent, name = os.path.split(self.target)
        where = resolve_in_root(self.root, parent)
        if os.path.isdir(where) and not os.path.islink(where):
            ctx.runner.run(["cp", "-f", self.source, os.path.join(where, name)])


@dataclass
class CopyStage(Command):
    """A copy's stage: a fresh directory on the host, private to root (0700), in the pot's run
    directory; the only host directory a copy ever shows the jail. Undone by removing it."""

    path: str

    def argvs(self) -> list[list[str]]:
        return [["mkdir", "-p", "-m", "700", os.path.dirname(self.path)], ["mkdir", "-m", "700", self.path]]

    def inverse(self) -> list[Step]:
        return [RemoveStage(self.path)]


@dataclass
class CopyOutFilter(Command):
    """What copy-out found in its stage, once the stage is out of the jail's reach, before it goes
    to the host: `test` refuses a FIFO, socket or device asked for (`what` names it), `find -delete`
    drops those inside a directory, and `find -perm +6000 -exec chmod ug-s` drops setuid and
    setgid bits unless `keep_setuid`: a pot never lands a setuid file on the host."""

    path: str
    what: str
    keep_setuid: bool = False

    def argvs(self) -> list[list[str]]:
        p = self.path
        argvs = [["test", "-f", p, "-o", "-d", p, "-o", "-L", p],
                 ["find", "-x", p, "!", "-type", "f", "!", "-type", "d", "!", "-type", "l", "-print", "-delete"]]
        if not self.keep_setuid:
            argvs.append(["find", "-x", p, "-perm", "+6000", "!", "-type", "l", "-exec", "chmod", "ug-s", "{}", "+"])
        return argvs

    def apply(self, ctx: Context) -> None:
        check, drop, *strip = self.argvs()
        try:
            ctx.runner.run(check)
        except CommandFailed:
            raise UsageError(f"{self.what}: a FIFO, socket or device; only files, directories and symbolic "
                             "links are copied") from None
        for name in ctx.runner.run(drop).splitlines():
            _log.warning(f"{name.removeprefix(os.path.dirname(self.path) + '/')}: a FIFO, socket or device, "
                         "not copied")
        for argv in strip:
            ctx.runner.run(argv)


@dataclass
class RemoveStage(Command):
    """`chflags -R -x noschg STAGE`, then `rm -rf STAGE`: cp -a keeps file flags, so a stage can
    hold system-immutable files (a copy of libc), which rm cannot remove until they are cleared.
    chflags may fail (a stage already gone); rm -rf says whether the stage is gone."""

    path: str

    def argvs(self) -> list[list[str]]:
        return [["chflags", "-R", "-x", "noschg", self.path], ["rm", "-rf", self.path]]

    def apply(self, ctx: Context) -> None:
        clear, remove = self.argvs()
        ctx.runner.run(clear, check=False)
        ctx.runner.run(remove)


def _param(params: list[str], name: str) -> str | None:
    for p in params:
        key, eq, value = p.partition("=")
        if key == name:
            return value if eq else ""
    return None


@dataclass
class JailCreate(Command):
    """`jail -c PARAM...` with every parameter explicit; undone by removing the jail again.

    jail(8) mounts devfs (and procfs, fdescfs when asked) itself, but only `jail -r` with the same
    parameters would unmount them, so the undo unmounts them explicitly, as pot's stop does.
    """

    params: list[str]

    @property
    def name(self) -> str:
        return _param(self.params, "name") or ""

    def argvs(self) -> list[list[str]]:
        return [["jail", "-c", *self.params]]

    def inverse(self) -> list[Step]:
        path = _param(self.params, "path") or "/"
        steps: list[Step] = [JailRemove(self.name, _param(self.params, "exec.stop") or "",
                                        _param(self.params, "stop.timeout") or "10")]
        return steps + devfs_unmounts(path, _param(self.params, "mount.fdescfs") is not None,
                                      _param(self.params, "mount.procfs") is not None)


def devfs_unmounts(path: str, fdescfs: bool, procfs: bool) -> list[Step]:
    """The file systems jail(8) mounted for `mount.*` parameters, innermost first."""
    steps: list[Step] = []
    if fdescfs:
        steps.append(JailUnmount(path, "/dev/fd"))
    if procfs:
        steps.append(JailUnmount(path, "/proc"))
    steps.append(JailUnmount(path, "/dev"))
    return steps


@dataclass
class JailRemove(Step):
    """`jail -f - -q -r NAME`, fed a one-jail config with the pot's exec.stop and stop.timeout.

    jail(8) runs exec.stop inside the jail, sends SIGTERM, waits up to stop.timeout for the
    processes to go, then removes the jail (killing what is left): the waiting is jail(8)'s,
    no sleeps here. A jail that no longer exists is not an error.
    """

    name: str
    exec_stop: str = ""
    stop_timeout: str = "10"

    def argv(self) -> list[str]:
        return ["jail", "-f", "-", "-q", "-r", self.name]

    def config(self) -> str:
        return stop_config(self.name, self.exec_stop, self.stop_timeout)

    def argvs(self) -> list[list[str]]:
        return [self.argv()]

    def render(self) -> list[str]:
        return [shlex.join(self.argv()) + " <<'EOF'", *self.config().rstrip("\n").split("\n"), "EOF"]

    def apply(self, ctx: Context) -> None:
        try:
            ctx.runner.run(self.argv(), input=self.config().encode())
        except CommandFailed:
            if jail_exists(ctx.runner, self.name):
                raise


@dataclass
class JailLoopbackUp(Command):
    """Give a VNET jail's own lo0 its address: a new network stack starts with lo0 down. The
    host's ifconfig does it in the jail's stack (`-j`, FreeBSD 13.3 and 14.0): no binary of the
    pot runs, and nothing of ladle's environment reaches the jail."""

    name: str

    def argvs(self) -> list[list[str]]:
        return [["ifconfig", "-j", self.name, "lo0", "inet", "127.0.0.1/8", "up"]]


def _monitor(ctx: Context) -> Any:
    if ctx.monitor is None:
        raise HostError("starting a pot needs its monitor")
    return ctx.monitor()


@dataclass
class JailMain(Step):
    """The pot's command: `jexec` run by the monitor, which copies its output into the pot's log,
    records the run, and runs `on_exit` (`ladle stop`) when a non-persistent pot's command ends.

    The jail was made with `persist`, so that set-up could run in it before any process did; it
    keeps it until `jail -r` (stop, or the teardown of a non-persistent pot)."""

    pot: str
    argv: list[str]
    log_path: str
    run_dir: str
    persistent: bool
    on_exit: list[str]
    creds: dict[str, Any] = field(default_factory=dict)  # a numeric user: uid, gid (or None), workdir, env

    def render(self) -> list[str]:
        run = self.run_dir.rstrip("/")
        lines = [f"# by the monitor, which copies the output to {self.log_path} and records the run:"]
        redirs = f" </dev/null >{shlex.quote(run + '/out.fifo')} 2>{shlex.quote(run + '/err.fifo')}"
        if not self.creds:
            return [*lines, shlex.join(self.argv) + redirs]
        c = self.creds
        groups = (f"setgroups {c['gid']}, setgid {c['gid']}" if c["gid"] is not None else
                  f"the group and groups of uid {c['uid']} in the jail's passwd (gid 0 if none)")
        return [*lines, "# jexec -U takes only a user name, so the monitor's child does what it does, with the ids:",
                f"# jail_attach to {self.pot}, chdir {shlex.quote(c['workdir'])}, {groups}, setuid {c['uid']},",
                "# then execve in the jail with exactly this environment (no env(1) runs):",
                "#   " + shlex.join(["env", "-i", *(f"{k}={v}" for k, v in c["env"].items()), *self.argv]) + redirs]

    def apply(self, ctx: Context) -> None:
        fds = list(ctx.attach) if ctx.attach else []
        _monitor(ctx).request("spawn", fds=fds, role="main", attach=bool(fds), pot=self.pot, argv=self.argv,
                              env=self.creds.get("env", {}), persistent=self.persistent, on_exit=self.on_exit,
                              log=self.log_path, run_dir=self.run_dir, creds=self.creds)

    def inverse(self) -> list[Step]:
        return [JailNotice(self.pot), JailRemove(self.pot), JailRelease(self.pot)]


@dataclass
class JailNotice(Step):
    """Tell the monitor that the pot is being stopped (its end will be 'stopped')."""

    pot: str

    def render(self) -> list[str]:
        return [f"# the monitor: pot {self.pot} is being stopped"]

    def apply(self, ctx: Context) -> None:
        _monitor(ctx).request("notice", pot=self.pot)


@dataclass
class JailRelease(Step):
    """Wait until the monitor has seen the pot's command end and recorded it; a run no monitor
    knows any more (it died with everything) is marked stopped here."""

    pot: str

    def render(self) -> list[str]:
        return [f"# the monitor records how pot {self.pot} ended"]

    def apply(self, ctx: Context) -> None:
        reply = _monitor(ctx).request("release", pot=self.pot)
        if reply.get("state") is not None or ctx.store is None:
            return
        row = ctx.store.get("runs", pot=self.pot)
        if row is not None and row["state"] == "running":
            ctx.store.put("runs", {"pot": self.pot}, {**row, "state": "stopped", "finished": time.time()})


# Bases -----------------------------------------------------------------------------------------

@dataclass
class BaseFetch(Command):
    """`fetch -o FILE URL`. fetch(1) removes a partial file when a transfer fails (no -R)."""

    url: str
    dest: str

    def argvs(self) -> list[list[str]]:
        return [["fetch", "-o", self.dest, self.url]]


def manifest_digest(manifest: str, member: str) -> str:
    """The sha256 of `member` in a release MANIFEST.

    Each line is tab-separated: file name, sha256, number of files, distribution name,
    description, installed by default (on/off), as written by release/scripts/make-manifest.sh.
    """
    for line in manifest.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] == member:
            digest = fields[1].strip().lower()
            if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                return digest
            raise HostError(f"MANIFEST line for {member} has no valid sha256")
    raise HostError(f"MANIFEST has no line for {member}")


@dataclass
class BaseVerify(Step):
    """Check a download against its MANIFEST line; a mismatching file is deleted before failing,
    so that the next attempt downloads it again instead of trusting it."""

    file: str
    manifest: str
    member: str = "base.txz"

    def argvs(self) -> list[list[str]]:
        return [["cat", self.manifest], ["sha256", "-q", self.file]]

    def render(self) -> list[str]:
        return [f"# the sha256 of {self.member} must equal its line in MANIFEST, else the file is removed",
                *(shlex.join(a) for a in self.argvs())]

    def apply(self, ctx: Context) -> None:
        expected = manifest_digest(ctx.runner.run(["cat", self.manifest]), self.member)
        actual = ctx.runner.run(["sha256", "-q", self.file]).strip().lower()
        if actual != expected:
            ctx.runner.run(["rm", "-f", self.file])
            raise HostError(f"{self.file} is damaged: sha256 {actual} instead of {expected} from MANIFEST; "
                            "it was removed, try again")


@dataclass
class BaseExtract(Command):
    """`tar -x -p -f ARCHIVE -C DEST` with bsdtar's safe defaults.

    bsdtar refuses members with '..' or an absolute path, and will not extract through a symbolic
    link, unless told otherwise: -P (--absolute-paths) and -U (--unlink-first, which removes the
    symlinks in the way) must never be given. -p keeps modes, file flags and ACLs, as root does
    by default. Undone by clearing the schg flags that base.txz sets (libc, ld-elf.so, ...), so
    that the layer's own removal can delete the tree.
    """

    archive: str
    dest: str

    def argvs(self) -> list[list[str]]:
        return [["tar", "-x", "-p", "-f", self.archive, "-C", self.dest]]

    def inverse(self) -> list[Step]:
        return [Cmd(["chflags", "-R", "noschg", self.dest])]
