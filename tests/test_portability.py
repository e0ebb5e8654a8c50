"""ladle on a FreeBSD host, simulated here: every module but the Linux driver imports when
`sys.platform` says FreeBSD and the C library lacks Linux's symbols, and the intent log of a
Linux step is a one-line error there, not a crash of every later command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parent.parent

# Runs first in the child: FreeBSD's sys.platform, a libc without the Linux-only functions, and
# the os/select/signal functions FreeBSD's Python does not have.
FREEBSD = textwrap.dedent("""
    import ctypes, os, select, signal, sys
    sys.platform = "freebsd14"
    LINUX_ONLY = {"unshare", "setns", "umount2", "pivot_root", "inotify_init1", "inotify_add_watch",
                  "prctl", "capset", "capget", "close_range", "sethostname", "memfd_create"}

    class FreeBSDLibc(ctypes.CDLL):
        def __getattr__(self, name):
            if name in LINUX_ONLY:
                raise AttributeError(f"/lib/libc.so.7: undefined symbol: {name}")
            return super().__getattr__(name)

        def __getitem__(self, name):
            if name in LINUX_ONLY:
                raise AttributeError(f"/lib/libc.so.7: undefined symbol: {name}")
            return super().__getitem__(name)

    ctypes.CDLL = FreeBSDLibc
    for module, names in ((os, ("pidfd_open", "memfd_create", "MFD_CLOEXEC", "MFD_ALLOW_SEALING")),
                          (select, ("epoll", "EPOLLIN")), (signal, ("pidfd_send_signal",))):
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
""")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", FREEBSD + textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=ROOT)


def test_every_module_but_the_linux_driver_imports_on_freebsd() -> None:
    proc = _run("""
        import importlib, pkgutil, ladle
        names = sorted(m.name for m in pkgutil.walk_packages(ladle.__path__, "ladle.")
                       if not m.name.startswith("ladle.hosts.linux") and m.name != "ladle.__main__")
        for name in names:
            importlib.import_module(name)
        import ladle.platform
        print(len(names), ladle.platform.current.name)
    """)
    assert proc.returncode == 0, proc.stderr
    count, platform = proc.stdout.split()
    assert int(count) > 40 and platform == "freebsd"


def test_the_linux_driver_does_bind_linux_symbols() -> None:
    """The simulation is real: the one package that may bind Linux's libc at import fails here."""
    proc = _run("import ladle.hosts.linux.syscalls")
    assert proc.returncode != 0 and "undefined symbol" in proc.stderr


def test_a_linux_step_in_the_intent_log_is_one_line_on_freebsd() -> None:
    proc = _run("""
        from ladle.plan.steps import Step, UnknownStep
        from ladle.hosts.freebsd.steps import JailRemove
        assert Step.from_json(JailRemove("web").to_json()) == JailRemove("web")
        try:
            Step.from_json('{"kind": "ladle.hosts.linux.live:LinuxLiveUnmount", "args": {}}')
        except UnknownStep as e:
            print(e)
    """)
    assert proc.returncode == 0, proc.stderr
    first = "step ladle.hosts.linux.live:LinuxLiveUnmount: cannot load ladle.hosts.linux.live here"
    assert proc.stdout.startswith(first)
    assert "undefined symbol" in proc.stdout and len(proc.stdout.splitlines()) == 1


def test_the_cli_answers_on_freebsd(tmp_path: Path) -> None:
    proc = _run(f"""
        from ladle.cli import main
        raise SystemExit(main(["--root", {str(tmp_path / "r")!r}, "--dry-run", "init", "--storage", "zfs",
                               "--dataset", "zroot/ladle"]))
    """)
    assert proc.returncode == 0, proc.stderr
    assert (f"zfs create -o mountpoint={tmp_path}/r/zfs -o atime=off -o ladle:root={tmp_path}/r zroot/ladle"
            in proc.stdout.splitlines())
