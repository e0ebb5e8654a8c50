"""Fixtures of the escape probes: the probe program, and a running pot that holds it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle, _teardown

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/security/probe.c built statically (a pot has no compiler, no interpreter, no libc)."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed for the escape probes (make bootstrap installs it)"
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(HERE / "probe.c")], check=True)
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, probe_binary: Path) -> Iterator[Ladle]:
    """A running persistent busybox pot `hostile` with the probe at /probe (one per module)."""
    cli = Ladle(tmp_path_factory.mktemp("hostile") / "root")
    cli("init")
    cli("create-base", "-r", "busybox")
    cli("create", "-p", "hostile", "-b", "busybox", "-c", "sleep 1000000")
    cli("copy-in", "-p", "hostile", "-s", str(probe_binary), "-d", "/probe")
    cli("start", "hostile")
    yield cli
    _teardown(cli)


def probe(cli: Ladle, pot: str, *args: str) -> str:
    """Run one probe in `pot`; its verdict line (ALLOWED or DENIED ERRNO)."""
    out = cli("exec", pot, "--", "/probe", *args, check=False).stdout
    return out.strip().splitlines()[-1] if out.strip() else ""
