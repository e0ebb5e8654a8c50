"""Shared helpers for the benchmarks: timing commands and a scratch ladle root."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The console script next to the interpreter (what users run), else the module.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "ladle")
LADLE = [_SCRIPT] if os.access(_SCRIPT, os.X_OK) else [sys.executable, "-m", "ladle"]
# The same interpreter and site as ladle's (the virtualenv's), not a wrapper script such as pyenv's
# shim, which adds tens of milliseconds, nor the base interpreter with its own site-packages.
PYTHON = sys.executable
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


def median_ms(argv: list[str], runs: int, env: dict[str, str] | None = None, warmup: int = 2) -> float:
    """Median wall time of `argv` in milliseconds; fails loudly if the command fails."""
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed: {proc.stderr.decode().strip()}")
        if i >= warmup:
            times.append(elapsed * 1000)
    return statistics.median(times)


@contextmanager
def scratch_ladle() -> Iterator[list[str]]:
    """A ladle root with the busybox base; removed afterwards, with every pot in it."""
    root = tempfile.mkdtemp(prefix="ladle-bench.")
    cli = [*LADLE, "--root", root]
    try:
        subprocess.run([*cli, "init"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*cli, "create-base", "-r", "busybox"], check=True, stdout=subprocess.DEVNULL)
        yield cli
    finally:
        names = subprocess.run([*cli, "ls", "-q"], capture_output=True, text=True).stdout.split()
        for name in names:
            subprocess.run([*cli, "destroy", "-p", name, "-F"], stdout=subprocess.DEVNULL)
        end_monitor(root)
        shutil.rmtree(root, ignore_errors=True)


def end_monitor(root: str) -> None:
    """Stop the keeper, monitor and spare pid 1 of `root` (a bench may keep them idle for long),
    found by the names they give themselves."""
    titles = {f"{who} {root}".encode() for who in ("ladle-mon-keeper", "ladle-mon", "ladle-pid1")}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().rstrip(b"\0 ")
            if title in titles:
                os.kill(int(pid), 9)
        except (OSError, ValueError):
            continue


def podman(tree: str, network: list[str] | None = None) -> float:
    """podman's median for `run --rm` of /bin/true on `tree`, with `network` options (default: none)."""
    if not shutil.which("podman"):
        raise SystemExit("bench: podman is not installed (make bench installs it)")
    work = tempfile.mkdtemp(prefix="ladle-bench-podman.")
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write(CONTAINERS_CONF)
    env = {**os.environ, "CONTAINERS_CONF": conf}
    podman = ["podman", "--root", os.path.join(work, "root"), "--runroot", os.path.join(work, "run"),
              "--storage-driver", "overlay"]
    try:
        tar = os.path.join(work, "rootfs.tar")
        subprocess.run(["tar", "-C", tree, "-cf", tar, "."], check=True)
        subprocess.run([*podman, "import", tar, "localhost/ladle-bench:1"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return median_ms([*podman, "run", "--rm", *(network or ["--network", "none"]), "localhost/ladle-bench:1",
                          "/bin/true"], RUNS, env=env)
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", os.path.join(work, "root")], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
