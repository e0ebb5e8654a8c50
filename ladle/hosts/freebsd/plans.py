"""The FreeBSD start, stop and copy plans, after pot's (pot reference §5.2, §5.4, §4.5).

Start: mount the root (when it is not already a whole tree at one path), the fscomps and
mount-ins in order, tmpfs on /tmp; the host's /etc/resolv.conf into the pot (pot's default DNS,
unless its /etc is read-only, or the engine gave its text); the network's host side (`net`);
`jail -c` with explicit parameters and `persist`; lo0 for a VNET jail, the pot's addresses,
/etc/hosts; then the pot's command in the background. Stop: `jail -r` (exec.stop, SIGTERM, wait,
kill, all by jail(8)), the network's host side, then every mount in reverse order, each tolerant
of being gone already.
"""

from __future__ import annotations

import os
import re
import stat

from ladle import names
from ladle.errors import NotFound, UsageError
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.hosts.freebsd import jailparams, net
from ladle.hosts.freebsd.rctl import JailLimits, JailLimitsRemove
from ladle.hosts.freebsd.steps import (
    CopyOutFilter,
    CopyStage,
    JailCopyHostFile,
    JailCreate,
    JailLoopbackUp,
    JailMain,
    JailNotice,
    JailRelease,
    JailRemove,
    JailRmdir,
    JailTmpfsMount,
    JailUnmount,
    NullfsMount,
    RemoveStage,
    devfs_unmounts,
)
from ladle.plan.steps import Cmd, Step
from ladle.storage.snapshotter import Mount

DEFAULT_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
RESOLV_CONF = "/etc/resolv.conf"


def jail_root(spec: RuntimeSpec) -> tuple[str, list[Mount]]:
    """The jail's path on the host, and the root mounts to perform there.

    A root that is one writable tree (a ZFS dataset's own mountpoint, a directory layer) is used
    in place as the jail's path, with nothing to mount. Anything else (a read-only root, or a
    root made of several trees like pot's multi pots) is nullfs-mounted on `<run_dir>/root`.
    """
    if not spec.root or spec.root[0].target != "/":
        raise UsageError(f"pot {spec.name} has no root tree to mount at '/'")
    for m in spec.root:
        if m.type != "bind":
            raise UsageError(f"pot {spec.name}: {m.type} layers need Linux; use full layers on FreeBSD")
    first = spec.root[0]
    if len(spec.root) == 1 and not first.readonly:
        return first.source, []
    return os.path.join(spec.run_dir, "root"), spec.root


def mount_steps(path: str, mounts: list[Mount]) -> list[Step]:
    steps: list[Step] = []
    for m in mounts:
        target = "/" if m.target == "/" else names.mountpoint(m.target)
        if m.type == "bind":
            steps.append(NullfsMount(m.source, path, target, m.readonly))
        elif m.type == "tmpfs":
            steps.append(JailTmpfsMount(path, target))
        else:
            raise UsageError(f"{m.type} mounts are not supported on FreeBSD (at {m.target})")
    return steps


_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def env_pairs(env: dict[str, str]) -> list[str]:
    for key in env:
        names.env_pair(f"{key}=")
    return [f"{k}={v}" for k, v in env.items()]


def main_argv(spec: RuntimeSpec) -> list[str]:
    """The pot's command as it runs in the jail: `jexec -U root NAME env -i VAR=... sh -c 'exec CMD'`.

    env -i gives the command exactly the pot's environment (plus PATH and HOME unless the pot
    sets them), nothing from the host. /bin/sh parses the command line as pot's tinirc does, and
    `exec` makes the command itself the jail's main process. No jexec -l: it would start the
    command in root's home directory; it runs in '/', like pot's.
    """
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", **spec.env}
    if spec.argv is not None:
        return image_argv(spec, env)
    return ["jexec", "-U", "root", names.pot_name(spec.name), "/usr/bin/env", "-i", *env_pairs(env),
            "/bin/sh", "-c", f"exec {spec.cmd}"]


def image_argv(spec: RuntimeSpec, env: dict[str, str]) -> list[str]:
    """An image's command, exec form: `env -i VAR=... jexec -d WORKDIR -U USER NAME ARGV...`.

    The host's env(1) sets the environment and jexec (by its full path: env looks a utility up
    in the new PATH, the image's), without -l, passes it on, so the image
    needs neither /bin/sh nor /usr/bin/env (freebsd-static and -dynamic have neither); PATH is
    the default one when the image sets none (FreeBSD's release images set no Env). jexec -U
    takes a user name of the jail's passwd (looked up after it attaches); a numeric User is run
    by the monitor itself (`image_ids`), and this argv is then the command alone."""
    if image_ids(spec) is not None:
        return list(spec.argv or [])
    user = spec.user or "root"
    if ":" in user:
        raise UsageError(f"image user {user!r}: on FreeBSD a user name runs with its own groups (jexec -U):"
                         " give a group as UID:GID")
    if not _USER.fullmatch(user):
        raise UsageError(f"invalid image user {names.short(user)}")
    return ["env", "-i", *env_pairs(env), "/usr/sbin/jexec", "-d", spec.workdir or "/", "-U", user,
            names.pot_name(spec.name), *(spec.argv or [])]


def image_ids(spec: RuntimeSpec) -> tuple[int, int | None] | None:
    """A numeric image User, `UID` or `UID:GID`, as (uid, gid or None); None for a name.

    jexec -U and -u take only names, and nothing in FreeBSD's base that an image surely has sets
    a numeric uid inside a jail (chroot(8) would, but it is not in freebsd-runtime and moves the
    working directory to '/'). So the monitor does what jexec does, in the child it forks:
    jail_attach(2), chdir, the groups (GID alone; without one the uid's group and groups from
    the jail's passwd, looked up after attaching as jexec -U does, or gid 0 if it has none there,
    as Docker does), setgid, setuid; then execve with the environment."""
    if spec.argv is None or not spec.user or not spec.user.split(":", 1)[0].isdigit():
        return None
    uid, sep, gid = spec.user.partition(":")
    if (sep and not gid.isdigit()) or int(uid) > _MAX_ID or (gid and int(gid) > _MAX_ID):
        raise UsageError(f"image user {names.short(spec.user)}: a numeric user is UID or UID:GID (each at most"
                         f" {_MAX_ID})")
    return int(uid), int(gid) if gid else None


_MAX_ID = 0xFFFFFFFE  # uid_t is 32 bits; (uid_t)-1 means "unchanged" to setuid


def exec_argv(spec: RuntimeSpec, argv: list[str], env: dict[str, str]) -> list[str]:
    """`jexec -l -U root NAME env VAR=... CMD...`: a login environment (TERM, PATH from
    login.conf) with the pot's variables on top, for commands run by hand."""
    pairs = env_pairs({**spec.env, **env})
    return ["jexec", "-l", "-U", "root", names.pot_name(spec.name),
            *(["/usr/bin/env", *pairs] if pairs else []), *argv]


def start_plan(spec: RuntimeSpec, on_exit: list[str], osrelease: str | None = None, root: str = "",
               ext: dict[str, str] | None = None) -> list[Step]:
    """`root` is the state root (the network lock lives there), `ext` the external interface
    of each address family ('inet', 'inet6'): the default route's, for pf's NAT and exports."""
    name = names.pot_name(spec.name)
    attrs = jailparams.effective(spec.attrs)
    path, roots = jail_root(spec)
    steps = mount_steps(path, roots) + mount_steps(path, spec.mounts)
    if attrs["no-tmpfs"] != "YES":
        steps.append(JailTmpfsMount(path, "/tmp"))
    if not spec.read_only_at("/etc") and spec.net.get("resolv") is None:
        steps.append(JailCopyHostFile(RESOLV_CONF, path, RESOLV_CONF))
    before, after = net.start_steps(spec, root, ext or {}, path)
    steps += before
    steps.append(JailCreate(jailparams.create_params(name, path, spec.hostname, spec.attrs, spec.network,
                                                     osrelease, spec.stack, spec.net)))
    if spec.network == "none" or spec.network in net.BRIDGES:
        steps.append(JailLoopbackUp(name))
    steps += after
    limits = spec.extra.get("limits") or {}
    if any(limits.get(k) for k in ("memory", "pids", "pcpu", "cpus")):
        steps.append(JailLimits(name, limits))
    ids = image_ids(spec)
    creds = {} if ids is None else {"uid": ids[0], "gid": ids[1], "workdir": spec.workdir or "/",
                                    "env": {"PATH": DEFAULT_PATH, "HOME": "/root", **spec.env}}
    steps.append(JailMain(name, main_argv(spec), spec.log_path, spec.run_dir, attrs["persistent"] == "YES",
                          on_exit, creds))
    return steps


def teardown_steps(spec: RuntimeSpec) -> list[Step]:
    """Unmount what start mounted, innermost first; each step tolerates a mount already gone."""
    attrs = jailparams.effective(spec.attrs)
    path, roots = jail_root(spec)
    steps = devfs_unmounts(path, attrs["fdescfs"] == "YES", attrs["procfs"] == "YES")
    if attrs["no-tmpfs"] != "YES":
        steps.append(JailUnmount(path, "/tmp"))
    for m in reversed([*roots, *spec.mounts]):
        steps.append(JailUnmount(path, "/" if m.target == "/" else names.mountpoint(m.target)))
    return steps


def stop_plan(spec: RuntimeSpec, run: RunRecord | None, root: str = "") -> list[Step]:
    """After `jail -r` (which gives the jail's end of an epair back to the host), the pot's pf
    rules, epair and, if it was the last pot on it, bridge go, or an alias pot's addresses."""
    name = names.pot_name(spec.name)
    attrs = jailparams.effective(spec.attrs)
    return [JailNotice(name), JailRemove(name, attrs["exec_stop"], attrs["stop_timeout"]), JailLimitsRemove(name),
            *net.stop_steps(spec, root), *teardown_steps(spec), JailRelease(name)]


def hosts_plan(spec: RuntimeSpec) -> list[Step]:
    """A running pot's /etc/hosts rewritten from the host, safely (`net.JailWriteFile`)."""
    text = spec.net.get("hosts")
    if text is None or spec.read_only_at("/etc"):
        return []
    return [net.JailWriteFile(jail_root(spec)[0], "/etc/hosts", str(text))]


def copy_plan(spec: RuntimeSpec, run: RunRecord | None, direction: str, host_path: str, pot_path: str,
              create_parents: bool, keep_setuid: bool = False) -> list[Step]:
    """pot's copy-in/copy-out, staged so that the jail never sees a host directory.

    The host side goes through a fresh directory private to root, `<run_dir>/copy.<token>`,
    that holds only what is copied: copy-in copies the source there first (on the host),
    copy-out starts with it empty. It is nullfs-mounted at a temporary directory under the pot's
    /tmp (read-only for copy-in, read-write for copy-out) and /bin/cp -a runs inside the jail, so
    that symbolic links on the pot's side resolve inside the pot. Copy-in's cp has -f: it removes
    what is at each destination name and creates a new file, so it never writes through a FIFO or
    device node the pot planted (a running pot could plant one again between the two; a stopped
    pot's throwaway jail runs nothing else). Copy-out copies the result from the stage to the
    destination once the stage is unmounted (out of the jail's reach), after `CopyOutFilter` has
    refused a special file, dropped those inside a tree and, unless `keep_setuid`, every setuid
    and setgid bit. The stage is removed at the end, and by the undo when a step fails.

    A running pot runs cp with jexec. A stopped pot gets its root and mounts (not tmpfs, so the
    temporary directory is on its disk) and a throwaway jail with no network, whose `command`
    is cp; the jail goes when cp exits. The host side is the operator's: its links are followed
    (as on Linux).
    """
    name = names.pot_name(spec.name)
    pot_path = "/" if pot_path == "/" else names.mountpoint(pot_path, "path", spaces=True)
    path, roots = jail_root(spec)
    token = os.urandom(4).hex()
    stage = os.path.join(spec.run_dir, f"copy.{token}")
    tmp = f"/tmp/ladle-copy-{direction}.{token}"
    before: list[Step] = []
    after: list[Step] = []
    if direction == "in":
        source = os.path.realpath(host_path)
        if not os.path.exists(source):
            raise NotFound(f"{host_path} does not exist")
        if source == "/":
            raise UsageError("cannot copy the host's root directory")
        if not stat.S_ISREG(mode := os.stat(source).st_mode) and not stat.S_ISDIR(mode):
            raise UsageError(f"{host_path}: a FIFO, socket or device; only files, directories and symbolic "
                             "links are copied")
        before.append(Cmd(["cp", "-a", source, stage + "/"]))
        cp = ["/bin/cp", "-a", "-f", f"{tmp}/{os.path.basename(source)}", pot_path]
        parent = os.path.dirname(pot_path)
    elif direction == "out":
        host_dir = os.path.abspath(host_path)
        if not os.path.isdir(host_dir):
            raise UsageError(f"copy-out needs an existing host directory, not {host_path}")
        if pot_path == "/":
            raise UsageError("give a file or directory inside the pot, not its root")
        cp = ["/bin/cp", "-a", pot_path, tmp + "/"]
        copied = f"{stage}/{os.path.basename(pot_path)}"
        after += [CopyOutFilter(copied, f"pot {spec.name}: {pot_path}", keep_setuid),
                  Cmd(["cp", "-a", copied, host_dir.rstrip("/") + "/"])]
        parent = ""
    else:
        raise UsageError(f"copy direction must be 'in' or 'out', not {direction!r}")
    running = run is not None and run.state == "running"
    steps: list[Step] = [CopyStage(stage), *before]
    if not running:
        steps += mount_steps(path, roots) + mount_steps(path, spec.mounts)
    steps.append(NullfsMount(stage, path, tmp, readonly=direction == "in", remove_dir=True))
    commands = ([["/bin/mkdir", "-p", parent]] if create_parents and parent != "/" and parent else []) + [cp]
    for argv in commands:
        if running:
            steps.append(Cmd(["jexec", "-U", "root", name, *argv]))
        else:
            steps.append(Cmd(["jail", "-c", f"path={path}", f"host.hostname={spec.hostname}", "ip4=disable",
                              "ip6=disable", "exec.clean", f"command={argv[0]}", *argv[1:]]))
    steps += [JailUnmount(path, tmp), JailRmdir(path, tmp)]
    if not running:
        steps += [JailUnmount(path, "/" if m.target == "/" else names.mountpoint(m.target))
                  for m in reversed([*roots, *spec.mounts])]
    return [*steps, *after, RemoveStage(stage)]
