"""Plan steps of the Linux driver: start and stop a pot, copy files in and out, lay out a busybox base.

A start is split so that host-side steps (network, cgroups) fit between its parts: `LinuxSandbox`
(pid 1 waits in new namespaces), the host-side steps, `LinuxEnter` (pid 1 builds the tree and
execs catatonit), `LinuxMain` (the command). ladle does them with system calls; each renders the
util-linux commands that do exactly the same (`unshare`, `mount`, `mknod`, `pivot_root`,
`setpriv`, `nsenter`, `ip`), from the same data it applies. `$PID1` stands for the pot's pid 1,
whose pid is only known once it runs.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from ladle.errors import HostError
from ladle.hosts.base import OOM, RuntimeSpec
from ladle.plan.steps import Context, Step
from ladle.storage.snapshotter import Mount


def spec_to_json(spec: RuntimeSpec) -> dict[str, Any]:
    """The spec as JSON values (mounts as [type, source, target, [options]])."""
    data = asdict(spec)
    data["root"] = [[m.type, m.source, m.target, list(m.options)] for m in spec.root]
    data["mounts"] = [[m.type, m.source, m.target, list(m.options)] for m in spec.mounts]
    return data


def spec_from_json(data: dict[str, Any]) -> RuntimeSpec:
    def mounts(rows: list[Any]) -> list[Mount]:
        out = []
        for row in rows:
            if isinstance(row, dict):
                out.append(Mount(row["type"], row["source"], row["target"], tuple(row["options"])))
            else:
                out.append(Mount(row[0], row[1], row[2], tuple(row[3])))
        return out

    return RuntimeSpec(**{**data, "root": mounts(data["root"]), "mounts": mounts(data["mounts"])})


def _mount_lines(mounts: list[Mount], root: str) -> list[str]:
    from ladle.hosts.linux import rootfs

    return rootfs.root_lines(mounts, root)


def caps_flags(mlock: bool) -> list[str]:
    from ladle.hosts.linux import caps

    keep = ",".join("+" + c.lower() for c in caps.names(mlock))
    return [f"--bounding-set=-all,{keep}", f"--inh-caps=-all,{keep}", "--ambient-caps=-all", "--no-new-privs"]


def seccomp_on(spec: RuntimeSpec) -> bool:
    """Whether the pot's processes run under the default seccomp filter (attribute `seccomp`)."""
    return spec.attrs.get("seccomp", "default") != "unconfined"


def join_cgroup(path: str) -> list[str]:
    """How a command is born in the pot's cgroup: the shell that runs it joins first."""
    if not path:
        return []
    return [f"echo $$ > {shlex.quote(path + '/cgroup.procs')}  # then what this shell runs is born there"]


SECCOMP_NOTE = "# then loads ladle's default seccomp filter (setpriv has no option for it) and execs:"


def _monitor(ctx: Context) -> Any:
    if ctx.monitor is None:
        raise HostError("starting a pot needs its monitor")
    return ctx.monitor()


def _ask(ctx: Context, pot: str, op: str, fds: list[int] | None = None, **args: Any) -> dict[str, Any]:
    """A monitor request on behalf of `pot`; its failure says which pot."""
    try:
        reply: dict[str, Any] = _monitor(ctx).request(op, fds=fds or [], pot=pot, **args)
    except HostError as e:
        raise HostError(f"pot {pot}: {e}") from None
    return reply


PID1 = '"$PID1"'  # how the rendering names the pot's pid 1 (its pid is known only once it runs)


@dataclass
class LinuxCgroup(Step):
    """The pot's cgroup, made before its pid 1: every process of the pot lives in it, so `ladle gc`
    finds them from the state root alone (`cgroup`). The state root's cgroup names the root."""

    pot: str
    path: str
    root: str

    def render(self) -> list[str]:
        from ladle.hosts.linux.cgroup import ROOT_XATTR

        parent = shlex.quote(self.path.rsplit("/", 1)[0])
        return [f"# pot {self.pot}: its cgroup, where every process of the pot lives",
                f"mkdir -p {parent}", shlex.join(["setfattr", "-n", ROOT_XATTR, "-v", self.root]) + f" {parent}",
                shlex.join(["mkdir", self.path])]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import cgroup

        cgroup.create(self.path, self.root)

    def inverse(self) -> list[Step]:
        return [LinuxCgroupRemove(self.pot, self.path)]


@dataclass
class LinuxCgroupRemove(Step):
    """Remove the pot's cgroup once its processes are gone; whatever is still in it (left by a
    crash, with no record of it) is killed first, with cgroup.kill. Then the state root's cgroup,
    if no other pot has one."""

    pot: str
    path: str

    def render(self) -> list[str]:
        path = shlex.quote(self.path)
        return [f"# pot {self.pot}: anything still in its cgroup is killed, and waited for (populated 0)",
                f"if grep -qx 'populated 1' {path}/cgroup.events; then echo 1 > {path}/cgroup.kill; fi",
                f"rmdir {path}",
                f"rmdir {shlex.quote(self.path.rsplit('/', 1)[0])} 2>/dev/null || true"
                "  # the state root's, once no other pot has one"]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import cgroup, limits

        if ctx.store is not None and os.path.isdir(self.path):
            record_oom(ctx.store, self.pot, limits.oom_kills(self.path))
        cgroup.remove(self.path)


def record_oom(store: Any, pot: str, kills: int) -> None:
    """A run whose command the kernel SIGKILLed (137) while its cgroup counted OOM kills ended for
    memory: the run says so (`ls`, `info`), read before the cgroup and its counter go."""
    row = store.get("runs", pot=pot)
    if kills and row is not None and row["state"] in ("exited", "stopped") and row["exit_code"] == 137:
        store.put("runs", {"pot": pot}, {**row, "error": f"{OOM} (the kernel's OOM killer, {kills} kill(s))"})


@dataclass
class LinuxLimits(Step):
    """The pot's limits (memory with swap, pids, CPU quota, cpuset) on its cgroups, before its
    pid 1 runs or at once on a running pot; its v1 groups are made here (`limits`). Undone by
    `previous` (a change to a running pot), else by the cgroup's removal."""

    pot: str
    path: str
    limits: dict[str, Any]
    previous: dict[str, Any] | None = None

    def render(self) -> list[str]:
        from ladle.hosts.linux import limits

        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.limits.items()) if v) or "none"
        return [f"# pot {self.pot}: its limits ({shown})", *limits.render(self.path, self.limits)]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import limits

        try:
            limits.prepare(self.path)
            limits.apply(self.path, self.limits)
        except HostError as e:
            raise HostError(f"pot {self.pot}: {e}") from None

    def inverse(self) -> list[Step]:
        return [] if self.previous is None else [LinuxLimits(self.pot, self.path, self.previous)]


@dataclass
class LinuxSandbox(Step):
    """The pot's pid 1, forked by the monitor into new namespaces and moved into the pot's cgroup;
    it waits for `LinuxEnter`, so that host-side steps can address the pot (by its pid) before
    anything runs in it."""

    pot: str
    namespaces: list[str]
    cgroup: str = ""

    def render(self) -> list[str]:
        flags = [f"--{ {'mnt': 'mount'}.get(n, n)}" for n in self.namespaces]
        lines = [f"# pot {self.pot}: its pid 1 (host pid $PID1) waits in new namespaces for the steps below",
                 shlex.join(["unshare", "--pid", "--fork", *flags, "--propagation", "private"])]
        if self.cgroup:
            lines.append(f"echo {PID1} > {shlex.quote(self.cgroup + '/cgroup.procs')}"
                         "  # by the monitor, before pid 1 goes on")
        return lines

    def apply(self, ctx: Context) -> None:
        _ask(ctx, self.pot, "sandbox", namespaces=self.namespaces, cgroup=self.cgroup)

    def inverse(self) -> list[Step]:
        return [LinuxDiscard(self.pot)]


@dataclass
class LinuxDiscard(Step):
    """Kill a pot's pid 1 that never ran the pot's command (undo of LinuxSandbox)."""

    pot: str

    def render(self) -> list[str]:
        return [f"kill -KILL {PID1}"]

    def apply(self, ctx: Context) -> None:
        _monitor(ctx).request("stop", pot=self.pot, timeout=0)


@dataclass
class LinuxEnter(Step):
    """pid 1 builds the pot's tree, pivots into it, drops its capabilities and execs catatonit."""

    pot: str
    spec: dict[str, Any]

    def render(self) -> list[str]:
        from ladle.hosts.linux import container, rootfs

        spec = spec_from_json(self.spec)
        root = spec.run_dir.rstrip("/") + "/root"
        lines = [f"# by pid 1 of pot {self.pot}, inside its namespaces:", shlex.join(["mkdir", "-p", root])]
        lines += _mount_lines(spec.root, root)
        for op in rootfs.plan(spec):
            lines += op.render(root)
        lines.append(shlex.join(["hostname", spec.hostname]))
        if spec.network not in container.SHARED_NET:
            lines.append("ip link set lo up")
        lines += [shlex.join(["cd", root]), "pivot_root . .",
                  "umount -l .",
                  *([SECCOMP_NOTE] if seccomp_on(spec) else []),
                  shlex.join(["exec", "setpriv", *caps_flags(spec.attr_on("mlock")), "--", "env", "-i",
                              "catatonit", "-P"]) + "  # from a sealed copy in memory"]
        return lines

    def apply(self, ctx: Context) -> None:
        _ask(ctx, self.pot, "enter", spec=self.spec)


@dataclass
class LinuxMain(Step):
    """The pot's command, forked by the monitor into the pot; the monitor records the run."""

    pot: str
    spec: dict[str, Any]
    on_exit: list[str]
    cgroup: str = ""

    def request(self) -> dict[str, Any]:
        from ladle.hosts.linux import container

        spec = spec_from_json(self.spec)
        argv, probe = container.spec_argv(spec)
        return {"pot": self.pot, "argv": argv, "env": container.pot_env(spec), "probe": probe,
                "mlock": spec.attr_on("mlock"), "seccomp": seccomp_on(spec), "cwd": spec.workdir or "/",
                "user": spec.user, "persistent": spec.persistent,
                "on_exit": self.on_exit, "log": spec.log_path, "run_dir": spec.run_dir}

    def render(self) -> list[str]:
        req = self.request()
        run = req["run_dir"].rstrip("/")
        env = [f"{k}={v}" for k, v in req["env"].items()]
        user = ["--reuid", req["user"].partition(":")[0], "--init-groups"] if req["user"] else []
        argv = ["nsenter", "--target", "$PID1", "--mount", "--uts", "--ipc", "--net", "--pid", "--root",
                f"--wd={req['cwd']}", "--", "setpriv", *caps_flags(req["mlock"]), *user, "--", "env", "-i", *env,
                *req["argv"]]
        line = shlex.join(argv).replace("'$PID1'", PID1)
        return [f"# by the monitor, which copies the output to {req['log']} and records the run:",
                *join_cgroup(self.cgroup),
                *([SECCOMP_NOTE] if req["seccomp"] else []),
                f"{line} </dev/null >{shlex.quote(run + '/out.fifo')} 2>{shlex.quote(run + '/err.fifo')}"]

    def apply(self, ctx: Context) -> None:
        fds = list(ctx.attach) if ctx.attach else []
        request = self.request()
        del request["pot"]
        _ask(ctx, self.pot, "spawn", fds, role="main", attach=bool(fds), **request)

    def inverse(self) -> list[Step]:
        return [LinuxStop(self.spec, None)]


@dataclass
class LinuxStop(Step):
    """Stop a pot: its exec_stop inside, SIGTERM to its command, SIGKILL to its pid 1 after
    stop_timeout (which ends the whole pid namespace); the monitor records how it ended.
    Idempotent, and it also ends a pot that no monitor knows any more."""

    spec: dict[str, Any]
    run: dict[str, Any] | None

    def render(self) -> list[str]:
        spec = spec_from_json(self.spec)
        run = self.run or {}
        pid1 = str(run["init_pid"]) if run.get("init_pid") else PID1
        main = str(run["main_pid"]) if run.get("main_pid") else "$MAIN"
        lines = []
        exec_stop = spec.attrs.get("exec_stop", "")
        if exec_stop:
            lines.append(shlex.join(["nsenter", "--target", pid1, "--all", "--", "/bin/sh", "-c", exec_stop]))
        return [*lines, f"kill -TERM {main}",
                f"# if it still runs after {spec.stop_timeout:g}s (waited for on a pidfd, not polled):",
                f"kill -KILL {pid1}"]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import stop

        stop.stop(spec_from_json(self.spec), _monitor(ctx), ctx.store)


@dataclass
class LinuxCopy(Step):
    """Copy a file or tree into ('in') or out of ('out') a pot, confined to its root."""

    spec: dict[str, Any]
    init_pid: int | None
    init_start: int | None
    direction: str
    host_path: str
    pot_path: str
    create_parents: bool = False
    keep_setuid: bool = False

    def render(self) -> list[str]:
        spec = spec_from_json(self.spec)
        head = ["# descriptor by descriptor, never following a symlink of the pot out of its root nor opening"
                " its FIFOs or devices (each file is made anew and renamed into place):"]
        if self.init_pid:
            root = f"/proc/{self.init_pid}/root"
        else:
            root = spec.run_dir.rstrip("/") + "/root"
            head += [shlex.join(["unshare", "--mount", "--propagation", "private"]),
                     *_mount_lines(spec.root, root), *_mount_lines(spec.mounts, root)]
        inside = root + "/" + self.pot_path.lstrip("/")
        lines = []
        if self.create_parents and self.direction == "in":
            lines.append(shlex.join(["mkdir", "-p", inside.rsplit("/", 1)[0] or "/"]))
        src, dst = (self.host_path, inside) if self.direction == "in" else (inside, self.host_path)
        lines.append(shlex.join(["cp", "-a", "--no-dereference", "--remove-destination", src, dst]))
        if self.direction == "out" and not self.keep_setuid:
            copied = os.path.join(self.host_path, os.path.basename(self.pot_path.rstrip("/")))
            lines.append(shlex.join(["find", copied, "-perm", "/6000", "!", "-type", "l", "-exec", "chmod", "ug-s",
                                     "{}", "+"]))
        return head + lines

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import copy

        copy.copy(spec_from_json(self.spec), self.init_pid, self.init_start, self.direction,
                  self.host_path, self.pot_path, self.create_parents, self.keep_setuid)


@dataclass
class BusyboxBase(Step):
    """Lay out a busybox base in the empty tree `dest`: directories, bin/busybox, applet links."""

    dest: str
    busybox: str

    def render(self) -> list[str]:
        from ladle.hosts.linux import busybox

        d = self.dest.rstrip("/")
        lines = [shlex.join(["mkdir", "-p", "-m", f"{mode:o}", f"{d}/{path}"])
                 for path, mode in busybox.DIRS]
        lines.append(shlex.join(["cp", self.busybox, f"{d}/bin/busybox"]))
        lines.append(f"{shlex.quote(self.busybox)} --list-full | grep / | while read -r a; do "
                     f"ln -s /bin/busybox {shlex.quote(d)}/\"$a\"; done")
        return lines

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import busybox

        busybox.check(self.busybox)
        listing = ctx.runner.run([self.busybox, "--list-full"])
        busybox.build(self.dest, self.busybox, busybox.applets(listing))

