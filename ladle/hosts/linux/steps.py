"""Plan steps of the Linux driver: start and stop a pot, copy files in and out, lay out a busybox base.

Start, stop and copy are done with system calls rather than commands, so their `render` shows the
equivalent util-linux commands and says so; what matters for an operator reading `--dry-run` is
which namespaces, mounts and limits the pot gets, and that is exact.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from ladle.errors import HostError
from ladle.hosts.base import RuntimeSpec
from ladle.plan.steps import Context, Step
from ladle.storage.snapshotter import Mount

ILLUSTRATIVE = "# illustrative: ladle does this with system calls; equivalent commands:"


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
    lines = []
    for m in mounts:
        target = root if m.target in ("", "/") else root + "/" + m.target.strip("/")
        if m.type in ("bind", "rbind", "nullfs"):
            lines.append(shlex.join(["mount", "--rbind", m.source, target]))
            if m.readonly:
                lines.append(shlex.join(["mount", "-o", "remount,bind,ro", target]))
        else:
            opts = ",".join(m.options)
            argv = ["mount", "-t", m.type, m.source, *(["-o", opts] if opts else []), target]
            lines.append(shlex.join(argv))
    return lines


def start_lines(spec: RuntimeSpec) -> list[str]:
    """The equivalent of what the supervisor's pid 1 does, as readable commands."""
    from ladle.hosts.linux import caps, container

    root = spec.run_dir.rstrip("/") + "/root"
    ns = ["--mount", "--uts"]
    if spec.attrs.get("sysvipc", "new") != "inherit":
        ns.append("--ipc")
    if spec.network != "inherit":
        ns.append("--net")
    lines = [ILLUSTRATIVE,
             shlex.join(["unshare", *ns, "--pid", "--fork", "--propagation", "private",
                         "sh", "-c", "<the lines below>"]),
             shlex.join(["mkdir", "-p", root])]
    lines += _mount_lines(spec.root, root)
    lines += _mount_lines(spec.mounts, root)
    if spec.attr_on("procfs"):
        lines.append(shlex.join(["mount", "-t", "proc", "proc", "-o", "nosuid,nodev,noexec",
                                 root + "/proc"]))
    lines += [shlex.join(["mount", "-t", "tmpfs", "tmpfs", "-o", "nosuid,strictatime,mode=755,size=65536k",
                          root + "/dev"]),
              f"mknod -m 666 {shlex.quote(root)}/dev/{{null,zero,full,random,urandom,tty}} ...",
              shlex.join(["mount", "-t", "devpts", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5",
                          root + "/dev/pts"]),
              shlex.join(["ln", "-s", "pts/ptmx", root + "/dev/ptmx"]),
              shlex.join(["mount", "-t", "tmpfs", "shm", "-o", "nosuid,nodev,noexec,mode=1777",
                          root + "/dev/shm"]),
              shlex.join(["mount", "-t", "sysfs", "sysfs", "-o", "ro,nosuid,nodev,noexec", root + "/sys"]),
              f"mount --bind -o ro {shlex.quote(root)}/proc/{{sys,sysrq-trigger,irq,bus,fs}}"
              "  # and /dev/null over /proc/kcore, /proc/keys, ..."]
    if spec.network != "inherit":
        lines.append("ip link set lo up")
    lines += [shlex.join(["hostname", spec.hostname]),
              shlex.join(["cd", root]), "pivot_root . . && umount -l .",
              "capsh --caps=" + ",".join("cap_" + c.lower() for c in caps.names(spec.attr_on("mlock")))
              + "+eip --no-new-privs  # bounding set too"]
    argv, _ = container.command_argv(spec.cmd) if spec.cmd.strip() else (["true"], None)
    env = [f"{k}={v}" for k, v in container.pot_env(spec).items()]
    lines.append(shlex.join(["exec", "env", "-i", *env, *argv]) + " </dev/null >>"
                 + shlex.quote(spec.log_path) + " 2>&1")
    return lines


@dataclass
class LinuxStart(Step):
    """Start the pot under a detached supervisor; returns once its command has exec'd."""

    spec: dict[str, Any]

    def render(self) -> list[str]:
        return start_lines(spec_from_json(self.spec))

    def apply(self, ctx: Context) -> None:
        import json
        import socket

        from ladle.hosts.linux import container
        from ladle.supervise import daemon, runs, supervisor

        spec = spec_from_json(self.spec)
        container.check_spec(spec)
        store = ctx.store
        store_path = store.path if store else None
        exit_path = os.path.join(spec.run_dir, "exit")

        def launch(stdio: Any, take_tty: bool) -> container.Launched:
            return container.launch(spec, stdio, take_tty=take_tty)

        def body(chan: socket.socket) -> int:
            return supervisor.supervise(spec.name, spec.log_path, store_path, exit_path, launch, chan)

        report, chan = daemon.spawn(body)
        try:
            if not report.startswith("R "):
                reason = report[2:] if report.startswith("E ") else report
                reason = reason or f"pot {spec.name}: its supervisor died while starting it"
                if store is not None:
                    store.put("runs", {"pot": spec.name}, {"pot": spec.name, **runs.failed(None, None, reason)})
                raise HostError(reason)
            row = json.loads(report[2:])
            try:
                if store is not None:
                    store.put("runs", {"pot": spec.name}, {"pot": spec.name, **row})
                chan.sendall(supervisor.RECORDED)
            except BaseException:
                from ladle.hosts.linux import stop

                chan.close()  # without RECORDED the supervisor kills the pot; wait for that
                stop.stop(spec, row, None)  # (a step that fails cleans up after itself)
                raise
        finally:
            chan.close()

    def inverse(self) -> list[Step]:
        return [LinuxStop(self.spec, None)]


@dataclass
class LinuxStop(Step):
    """Stop a pot: SIGTERM to its pid 1 (which forwards it), SIGKILL after stop_timeout (which
    ends the whole pid namespace), wait for the supervisor; idempotent, and it recovers a run
    whose supervisor or pot already died by marking it 'stopped'."""

    spec: dict[str, Any]
    run: dict[str, Any] | None

    def render(self) -> list[str]:
        spec = spec_from_json(self.spec)
        pid = str(self.run["init_pid"]) if self.run and self.run.get("init_pid") else "<pid 1 of the pot>"
        lines = []
        exec_stop = spec.attrs.get("exec_stop", "")
        if exec_stop:
            lines.append(shlex.join(["nsenter", "--target", pid, "--all", "--", "/bin/sh", "-c",
                                     exec_stop]))
        wait = f"# wait up to {spec.stop_timeout:g}s for it to exit (pidfd), then:"
        return [*lines, f"kill -TERM {pid}", wait, f"kill -KILL {pid}"]

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import stop

        spec = spec_from_json(self.spec)
        run = self.run
        if run is None and ctx.store is not None:
            run = ctx.store.get("runs", pot=spec.name)
        stop.stop(spec, run or {}, ctx.store)


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

    def render(self) -> list[str]:
        spec = spec_from_json(self.spec)
        if self.init_pid:
            root = f"/proc/{self.init_pid}/root"
            head = [ILLUSTRATIVE.replace("equivalent commands", "confined to the pot's root, like")]
        else:
            root = spec.run_dir.rstrip("/") + "/root"
            head = [ILLUSTRATIVE.replace("equivalent commands",
                                         "in a private mount namespace, confined to the pot's root")]
            head += _mount_lines(spec.root, root) + _mount_lines(spec.mounts, root)
        inside = root + "/" + self.pot_path.lstrip("/")
        lines = []
        if self.create_parents and self.direction == "in":
            lines.append(shlex.join(["mkdir", "-p", inside.rsplit("/", 1)[0] or "/"]))
        src, dst = (self.host_path, inside) if self.direction == "in" else (inside, self.host_path)
        lines.append(shlex.join(["cp", "-a", "--no-dereference", src, dst]))
        return head + lines

    def apply(self, ctx: Context) -> None:
        from ladle.hosts.linux import copy

        copy.copy(spec_from_json(self.spec), self.init_pid, self.init_start, self.direction,
                  self.host_path, self.pot_path, self.create_parents)


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

