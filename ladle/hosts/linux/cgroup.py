"""Each pot's cgroup: `<cgroup2>/ladle/<key>/<pot>`, KEY a short hash of the state root.

Every process of a pot lives there (its pid 1 is moved in before it runs anything of the pot, and
every command is born there), so `ladle gc` finds from the state root alone whatever a crash left
running with no record of it, and ends it with cgroup.kill. The cgroup2 hierarchy is wherever
/proc/self/mountinfo says: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid
one. This needs no controller, only cgroup.procs, cgroup.kill and cgroup.events; resource limits
will be set on the same cgroup. The state root's own cgroup names the root in an xattr, for
people (and the tests' leak check) asking whose it is.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import select
import signal
import time

from ladle.errors import HostError
from ladle.hosts.linux import limits

DEFAULT_MOUNT = "/sys/fs/cgroup"
ROOT_XATTR = limits.ROOT_XATTR
KILL_WAIT = 10.0  # seconds for killed processes to be gone from a cgroup


def find_mount(mountinfo: str) -> str | None:
    """The mount point of the cgroup2 hierarchy in a /proc/PID/mountinfo text."""
    for line in mountinfo.splitlines():
        fields, sep, fs = line.partition(" - ")
        if sep and fs.split()[:1] == ["cgroup2"] and len(fields.split()) > 4:
            return fields.split()[4].replace("\\040", " ")
    return None


@functools.cache  # read once per process: the monitor asks at every spawn and exec
def mount() -> str:
    """Where cgroup2 is mounted here (/sys/fs/cgroup if nowhere: rendering for another host)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return find_mount(f.read()) or DEFAULT_MOUNT
    except OSError:
        return DEFAULT_MOUNT


def key(root: str) -> str:
    """The state root's name in the cgroup tree: a hash of its real path, the same for every command."""
    return hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:12]


def root_dir(root: str) -> str:
    return os.path.join(mount(), "ladle", key(root))


def pot_dir(root: str, pot: str) -> str:
    return os.path.join(root_dir(root), pot)


def create(path: str, root: str) -> None:
    """Make the pot's cgroup (and its state root's, marked with the root); one that processes of
    an earlier run still use is refused."""
    parent = os.path.dirname(path)
    for _ in range(3):  # a stop of the root's last other pot may remove `parent` meanwhile
        try:
            os.makedirs(parent, exist_ok=True)
            os.setxattr(parent, ROOT_XATTR, os.path.realpath(root).encode())
            os.mkdir(path)
            return
        except FileExistsError:
            if populated(path):
                raise HostError(f"processes of an earlier run are still in {path}: run `ladle gc`") from None
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise HostError(f"cannot make cgroup {path}: {e.strerror} (is cgroup2 mounted"
                            f" at {os.path.dirname(os.path.dirname(parent))}?)") from None
    raise HostError(f"cannot make cgroup {path}: its parent keeps disappearing")


def join(path: str, pid: int) -> None:
    """Move process `pid` (0: the caller) into the cgroup, and into its v1 counterparts (`limits`)."""
    for procs in procs_files(path):
        with open(procs, "w") as f:
            f.write(str(pid))


def procs_files(path: str) -> list[str]:
    """The cgroup.procs files a process of the pot writes itself into: the cgroup2 group's, then
    those of the pot's v1 groups that exist (a v1 or hybrid host's controllers)."""
    return [os.path.join(path, "cgroup.procs"),
            *(os.path.join(d, "cgroup.procs") for d in limits.v1_dirs(path).values() if os.path.isdir(d))]


def exists(path: str) -> bool:
    """Whether anything of the pot's cgroups is there (its cgroup2 group or a v1 one)."""
    return os.path.isdir(path) or limits.exists(path)


def of_process(pid: int) -> str | None:
    """The ladle cgroup (a directory) that process `pid` is in, or None (not in one of ladle's)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    where = mount()
    for line in lines:
        if line.startswith("0::/ladle/"):
            return where + line[3:]
    return None


def populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return "populated 1" in f.read().splitlines()
    except FileNotFoundError:
        return False


def remove(path: str, timeout: float = KILL_WAIT) -> None:
    """Remove the pot's cgroup, killing what is still in it first (a crash left it there), the
    state root's cgroup if no other pot has one, and `ladle` if no other root has one; then the
    same of its v1 groups."""
    if os.path.isdir(path):
        _remove_v2(path, timeout)
    limits.remove(path)


def _remove_v2(path: str, timeout: float) -> None:
    for _ in range(3):  # a process may join between the kill and the rmdir (an exec starting)
        if populated(path):
            kill(path, timeout)
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise HostError(f"cannot remove cgroup {path}: {e.strerror}") from None
    else:
        raise HostError(f"cannot remove cgroup {path}: processes keep joining it")
    for parent in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        with contextlib.suppress(OSError):  # busy: another pot of this root, or another root, runs
            os.rmdir(parent)  # the root's cgroup, then `ladle` itself: nothing is left once none runs


def kill(path: str, timeout: float) -> None:
    """SIGKILL every process in the cgroup and wait until it is empty (`populated 0`)."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except FileNotFoundError:  # before Linux 5.14: one by one
        with open(os.path.join(path, "cgroup.procs")) as f:
            for pid in f.read().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    wait_empty(path, timeout)


def wait_empty(path: str, timeout: float) -> None:
    """Wait for `populated 0` in cgroup.events, which wakes poll() with POLLPRI when it changes."""
    deadline = time.monotonic() + timeout
    fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while b"populated 1" in os.pread(fd, 4096, 0):
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError(f"processes in {path} survived SIGKILL for {timeout:g}s")
            poller.poll(min(left, 0.1) * 1000)  # and re-read: a change before poll() is not lost
    finally:
        os.close(fd)


def pots(root: str) -> dict[str, bool]:
    """The pots of this state root that have a cgroup, and whether processes are in it."""
    base = root_dir(root)
    try:
        names = {n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n))}
    except FileNotFoundError:
        names = set()
    with contextlib.suppress(OSError):  # no mark (made by hand?): the hash is all there is
        if os.getxattr(base, ROOT_XATTR).decode() != os.path.realpath(root):
            return {}  # another root's, whose path has the same hash: not ours to end
    names |= limits.pot_names(base)  # a v1 group whose cgroup2 group is gone (a crash between the two)
    return {n: populated(os.path.join(base, n)) for n in sorted(names)}
