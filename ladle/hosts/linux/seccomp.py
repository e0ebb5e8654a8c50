"""The seccomp filter every process of a pot runs under on Linux (attribute `seccomp`).

Capabilities keep a pot's root from most of the kernel, but some system calls check none, or check
one a pot keeps, and reach state shared with the host: the keyrings (`keyctl` read the host root's
keys), `bpf`, `perf_event_open`, `userfaultfd`, new user namespaces (which give back every
capability inside them), handles that open any file by inode (`open_by_handle_at`). Like Docker's
and Podman's default profile, the filter refuses those (EPERM) and the kernel's module, reboot,
clock, swap, quota and mount interfaces; `clone3` gets ENOSYS, which has the C library fall back to
`clone`, whose flags a filter can inspect (clone3 passes them in memory, out of a filter's reach).

The filter is built with libseccomp (the library Docker, Podman and runc use), once per monitor,
and exported as a BPF program; each forked child only loads those bytes (`apply`), after
no_new_privs and just before it execs, so a pot's processes can neither remove nor widen it.
`seccomp=unconfined` turns it off for one pot, as `--security-opt seccomp=unconfined` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from ladle.errors import HostError

# Refused with EPERM whatever their arguments (the calls Docker's default profile leaves out that
# exist on x86-64 and arm64; the rest of its list is already denied for lack of CAP_SYS_ADMIN).
DENIED = (
    "add_key", "keyctl", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
    "kexec_load", "kexec_file_load", "reboot",
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
    "open_by_handle_at", "name_to_handle_at",
    "iopl", "ioperm", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "nfsservctl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    "setns", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)
CLONE_NEWUSER = 0x10000000

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise HostError("libseccomp not found: it builds every pot's seccomp filter"
                        " (on Debian: apt-get install libseccomp2)") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_Arg)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def build() -> bytes:
    """The default filter as a BPF program (struct sock_filter[]), for this machine's architecture."""
    lib = _lib()
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise HostError("libseccomp could not start a filter")
    try:
        def rule(action: int, name: str, *args: _Arg) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a call of this architecture
                return
            arr = (_Arg * len(args))(*args) if args else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(args), arr)
            if rc < 0:
                raise HostError(f"libseccomp refused the rule for {name}: {os.strerror(-rc)}")

        for name in DENIED:
            rule(_errno(errno.EPERM), name)
        rule(_errno(errno.ENOSYS), "clone3")
        # a new user namespace (flags are the first argument of both on x86-64 and arm64)
        for name in ("clone", "unshare"):
            rule(_errno(errno.EPERM), name, _Arg(0, _SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        r, w = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            if rc < 0:
                raise HostError(f"libseccomp could not export the filter: {os.strerror(-rc)}")
            program = b""
            while chunk := os.read(r, 65536):
                program += chunk
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return program
    finally:
        lib.seccomp_release(ctx)


def apply(program: bytes) -> None:
    """Load a filter made by `build` into this process (no_new_privs must be set already)."""
    from ladle.hosts.linux import syscalls as sc

    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Prog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    sc.set_seccomp(ctypes.addressof(prog))
