"""The capabilities a pot's processes keep on Linux, and how they are dropped.

A pot runs as root in the host's user namespace, so its capabilities are what separates it from
the host. It keeps Docker's default set less MKNOD, 13, which common software (package managers,
web servers dropping privileges, ping) needs and which grants no way out of the namespaces:

    CHOWN DAC_OVERRIDE FSETID FOWNER NET_RAW SETGID SETUID SETFCAP SETPCAP
    NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE

MKNOD goes because Docker's keeping it relies on a devices cgroup: without one, a pot could make
a node of any host device. Its /dev holds the harmless nodes ladle makes, and every other mount
of the pot is nodev.

plus IPC_LOCK when the pot's `mlock` attribute is on (FreeBSD's `allow.mlock`). Everything else,
notably SYS_ADMIN (mount, setns), SYS_MODULE, SYS_PTRACE, SYS_TIME, NET_ADMIN and SYS_BOOT, is
removed from the bounding, permitted, effective and inheritable sets; the ambient set is cleared
and `no_new_privs` is set, so neither setuid binaries nor file capabilities can win any back.
"""

from __future__ import annotations

from ladle.hosts.linux import syscalls as sc

CAP = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
    "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "IPC_LOCK": 14, "SYS_CHROOT": 18,
    "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31,
}

DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "NET_RAW", "SETGID", "SETUID",
           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


def names(mlock: bool) -> tuple[str, ...]:
    """The capability names a pot keeps."""
    return (*DEFAULT, "IPC_LOCK") if mlock else DEFAULT


def mask(mlock: bool) -> int:
    """The kept set as a bit mask, as /proc/PID/status shows it (CapEff)."""
    bits = 0
    for name in names(mlock):
        bits |= 1 << CAP[name]
    return bits


def drop(mlock: bool) -> None:
    """Reduce this process to the pot's set, in the order the kernel requires: the bounding set
    first (needs SETPCAP, which we still hold), then ambient, then the other sets, then
    no_new_privs. Children and execve'd programs inherit the result."""
    keep = mask(mlock)
    cap = 0
    while True:
        try:
            present = sc.capbset_read(cap)
        except OSError:  # EINVAL: past the last capability this kernel knows
            break
        if present and not keep & (1 << cap):
            sc.capbset_drop(cap)
        cap += 1
    sc.clear_ambient()
    eff, prm, _ = sc.capget()
    sc.capset(eff & keep, prm & keep, prm & keep)
    sc.set_no_new_privs()
