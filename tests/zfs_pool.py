"""A throw-away ZFS pool for the tests: zfs-fuse on this machine, a sparse file as its only disk.

The pool is destroyed and its file removed at the end of the session, even after failures. The
zfs-fuse daemon is started if none runs, and left running: other test sessions may share it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from ladle.state.store import Store

POOL_SIZE = 512 * 1024 * 1024
READY_TIMEOUT = 15.0


def _sbin_on_path() -> None:
    """zfs and zpool live in /usr/sbin, which a non-login root shell may lack."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(path + [d for d in ("/usr/sbin", "/sbin") if d not in path])


def _zpool_ready() -> bool:
    return subprocess.run(["zpool", "list"], capture_output=True).returncode == 0


def _ensure_daemon() -> None:
    if subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True).returncode != 0:
        subprocess.run(["zfs-fuse"], check=True, capture_output=True)  # daemonizes itself
    deadline = time.monotonic() + READY_TIMEOUT
    while not _zpool_ready():
        if time.monotonic() > deadline:
            pytest.fail(f"zfs-fuse did not answer 'zpool list' within {READY_TIMEOUT:.0f}s")
        time.sleep(0.05)


def run(*argv: str) -> str:
    """Run a zfs/zpool command for a test's own set-up or checks."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def run_busy(*argv: str) -> None:
    """Run a zfs/zpool destroy, retried while zfs-fuse still holds what it just unmounted."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if "is busy" not in proc.stderr or time.monotonic() > deadline:
            raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def zfs_pool() -> Iterator[str]:
    """The name of an empty pool (`-m none`), e.g. 'ladletest1234'."""
    _sbin_on_path()
    if shutil.which("zfs-fuse") is None:
        pytest.skip("zfs-fuse is not installed")
    _ensure_daemon()
    name = f"ladletest{os.getpid()}"
    image = f"/var/tmp/{name}.img"
    with open(image, "wb") as f:
        f.truncate(POOL_SIZE)
    created = False
    try:
        run("zpool", "create", "-m", "none", name, image)
        created = True
        yield name
    finally:
        try:
            if created:
                run_busy("zpool", "destroy", "-f", name)
        finally:
            os.unlink(image)


@contextlib.contextmanager
def ladle_zfs(pool: str) -> Iterator[tuple[str, str, Store]]:
    """(dataset, root, store) for one test: `<pool>/ladle`, a fresh root and state database.

    Afterwards everything under `<pool>/ladle` is destroyed (clones included), then the root.
    """
    root = tempfile.mkdtemp(prefix=f"ladle-zfs-{os.getpid()}-", dir="/tmp")
    dataset = f"{pool}/ladle"
    store = Store(os.path.join(root, "ladle.db"))
    try:
        yield dataset, root, store
    finally:
        store.close()
        if subprocess.run(["zfs", "list", "-H", "-o", "name", dataset], capture_output=True).returncode == 0:
            run_busy("zfs", "destroy", "-R", dataset)
        shutil.rmtree(root)
