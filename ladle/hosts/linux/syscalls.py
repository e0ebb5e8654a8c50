"""The Linux system calls Python 3.11 lacks, through ctypes on the C library already loaded.

Each wrapper raises OSError with errno set, like the os module does, so callers handle one kind of
failure. Nothing here forks or decides policy; it is a thin, typed layer over libc.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

_libc = ctypes.CDLL(None, use_errno=True)

# Namespaces (clone flags).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# pivot_root has no portable libc wrapper; its number per architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_c_char_p = ctypes.c_char_p
_c_int = ctypes.c_int
_c_ulong = ctypes.c_ulong

_libc.mount.argtypes = [_c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p]
_libc.umount2.argtypes = [_c_char_p, _c_int]
_libc.unshare.argtypes = [_c_int]
_libc.setns.argtypes = [_c_int, _c_int]
_libc.sethostname.argtypes = [_c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [_c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong]
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        _check(_libc.pivot_root(_b(new_root), _b(put_old)), "pivot_root")
        return
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_seccomp(prog_address: int) -> None:
    """Load the seccomp filter whose struct sock_fprog is at `prog_address`."""
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog_address)


def capbset_read(cap: int) -> bool:
    """Is `cap` in the bounding set? Raises OSError(EINVAL) past the kernel's last capability."""
    return prctl(PR_CAPBSET_READ, cap) == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def clear_ambient() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks, version 3 ABI)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


# Network interfaces -------------------------------------------------------------------------------

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def interface_up(name: str) -> None:
    """Bring an interface up with SIOCSIFFLAGS (no `ip` process): used for `lo` in a new net ns."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))


# Terminals ----------------------------------------------------------------------------------------

TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


# The new mount API (Linux 5.2+; mount_setattr 5.12+): a tree cloned on the host can be moved into
# a running pot's mount namespace, where the host's directories are no longer visible.
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def open_tree(path: str, flags: int) -> int:
    """A detached copy of the mount tree at `path` (OPEN_TREE_CLONE), as a descriptor."""
    return _check(_libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(AT_FDCWD), _c_char_p(_b(path)),
                                ctypes.c_uint(flags | os.O_CLOEXEC)), f"open_tree {path}")


def set_mount_attrs(tree_fd: int, attrs: int) -> None:
    """Set `attrs` (MOUNT_ATTR_*) on the mount at `tree_fd` and every mount below it (attached or
    not)."""
    attr = _MountAttr(attrs, 0, 0, 0)
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(tree_fd), _c_char_p(b""),
                         ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def move_mount(tree_fd: int, target_fd: int) -> None:
    """Attach a detached tree on the directory `target_fd` (both given as descriptors)."""
    _check(_libc.syscall(_SYS_MOVE_MOUNT, ctypes.c_int(tree_fd), _c_char_p(b""), ctypes.c_int(target_fd),
                         _c_char_p(b""), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)),
           "move_mount")
