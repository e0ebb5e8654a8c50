"""Escape probes through mount points (issue item 5): a link planted in the pot must not redirect a
mount-in, at start or into a running pot. The pot plants the links itself, as a hostile root would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle

LINKS = [("/evil", "/"), ("/up", "../../.."), ("/deep", "/etc/../")]


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hostdir"
    d.mkdir()
    (d / "marker").write_text("host\n")
    return d


@pytest.fixture
def planter(hostile: Ladle) -> Iterator[Ladle]:
    """A persistent pot whose command planted the links and keeps running."""
    plant = "; ".join(f"ln -s {target} {link}" for link, target in LINKS)
    hostile("create", "-p", "planter", "-b", "busybox", "-c", f"sh -c '{plant}; exec sleep 1000000'")
    hostile("start", "planter")
    yield hostile
    hostile("destroy", "-p", "planter", "-F", check=False)


def refused(proc: object, link: str) -> bool:
    err = getattr(proc, "stderr", "")
    return (getattr(proc, "returncode", 0) != 0 and len(err.strip().splitlines()) == 1
            and f"mount point {link} leads to the pot's root directory" in err)


@pytest.mark.parametrize("link", [link for link, _ in LINKS])
def test_a_live_mount_onto_a_planted_link_to_the_root_is_refused(planter: Ladle, host_dir: Path, link: str) -> None:
    proc = planter("mount-in", "-p", "planter", "-d", str(host_dir), "-m", link, "--ro", check=False)
    assert refused(proc, link), proc.stderr
    assert "marker" not in planter("exec", "planter", "--", "ls", "/").stdout  # the root is still the pot's
    assert "planter" in planter("ls", "-q").stdout.split()


@pytest.mark.parametrize("link", [link for link, _ in LINKS])
def test_a_mount_onto_a_planted_link_to_the_root_fails_the_next_start(planter: Ladle, host_dir: Path,
                                                                       link: str) -> None:
    """The issue's reproduction: `ln -s / /evil`, then `mount-in -m /evil --ro` of a stopped pot: at the
    next start the pot's root became the host directory, writable."""
    planter("stop", "planter")
    planter("mount-in", "-p", "planter", "-d", str(host_dir), "-m", link, "--ro")
    proc = planter("start", "planter", check=False)
    assert proc.returncode != 0 and f"mount point {link} leads to the pot's root directory" in proc.stderr
    assert planter("info", "-p", "planter", "--json", check=False).stdout.count('"running"') == 0
    assert sorted(p.name for p in host_dir.iterdir()) == ["marker"]  # nothing written on the host
