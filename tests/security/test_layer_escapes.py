"""Escape probes for image layers: a layer pushed to a real registry that tries to write outside
the pot's tree (`../`, an absolute name, through a symlink of its own, a hard link out, a whiteout
out), make a device node (under /dev it is left out instead), hide a symlink loop, lie about its
diff_id or unpack a huge member count. Each is refused in one line by `create --image` and by `run`, and
leaves no layer snapshot, no pot, no operation and nothing outside."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import Layout, Registry, registry  # noqa: F401  (a fixture)
from tests.test_images_run import _add, busybox_layer, image, tar

Build = Callable[[tarfile.TarFile], None]


def _symlink_then_write(t: tarfile.TarFile) -> None:
    _add(t, "out", "l", link="/")
    _add(t, "out/VICTIM", data=b"pwned\n")


def _relative_symlink_out(t: tarfile.TarFile) -> None:
    _add(t, "up", "l", link="../../../../../../VICTIM")


def _hardlink_out(t: tarfile.TarFile) -> None:
    _add(t, "h", "h", link="../../../../VICTIM")


def _hardlink_absolute(t: tarfile.TarFile) -> None:
    _add(t, "h", "h", link="/etc/shadow")


def _loop(t: tarfile.TarFile) -> None:
    _add(t, "a", "l", link="b")
    _add(t, "b", "l", link="a")


def _device(t: tarfile.TarFile) -> None:
    _add(t, "tmp", "d", mode=0o1777)
    _add(t, "tmp/mem", "c", mode=0o666)  # outside /dev: refused


def _dev_mem(t: tarfile.TarFile) -> None:
    _add(t, "dev", "d", mode=0o755)
    _add(t, "dev/mem", "c", mode=0o666)  # under /dev: left out


def _whiteout_out(t: tarfile.TarFile) -> None:
    _add(t, "../.wh.VICTIM")


def _bare_whiteout(t: tarfile.TarFile) -> None:
    _add(t, "etc/.wh.")


def _many(t: tarfile.TarFile) -> None:
    for i in range(40):
        _add(t, f"f{i}", data=b"x")


HOSTILE: dict[str, tuple[Build, str]] = {
    "dotdot": (lambda t: _add(t, "../../../../VICTIM", data=b"pwned\n"), "escapes"),
    "absolute": (lambda t: _add(t, "/VICTIM", data=b"pwned\n"), "absolute"),
    "symlink-write": (_symlink_then_write, "symlink"),
    "symlink-out": (_relative_symlink_out, "escapes"),
    "hardlink-out": (_hardlink_out, "escapes"),
    "hardlink-absolute": (_hardlink_absolute, "absolute"),
    "loop": (_loop, "loop"),
    "device": (_device, "device"),
    "whiteout-out": (_whiteout_out, "escapes"),
    "bare-whiteout": (_bare_whiteout, "whiteout"),
    "many": (_many, "max_tar_members"),
}


@pytest.fixture(scope="module")
def hostile(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    """Each hostile layer as the second layer over busybox, pushed by skopeo; and a layer whose
    diff_id in the config is not its content's."""
    lay = Layout(tmp_path_factory.mktemp("hostile"))
    refs = {}
    base = tar(busybox_layer)
    for name, (build, _) in HOSTILE.items():
        lay.tag(name, image(lay, [base, tar(build)], "gzip", {"Cmd": ["/bin/true"]}))
        registry.push(lay, name, f"hostile/{name}:1")
        refs[name] = f"{registry.host}/hostile/{name}:1"
    desc = image(lay, [base], "gzip", {"Cmd": ["/bin/true"]})
    lay.tag("lying", _lie(lay, desc))
    registry.push(lay, "lying", "hostile/lying:1")
    refs["lying"] = f"{registry.host}/hostile/lying:1"
    lay.tag("dev-mem", image(lay, [base, tar(_dev_mem)], "gzip", {"Cmd": ["/bin/true"]}))
    registry.push(lay, "dev-mem", "hostile/dev-mem:1")
    refs["dev-mem"] = f"{registry.host}/hostile/dev-mem:1"
    return refs


def _lie(lay: Layout, desc: dict[str, Any]) -> dict[str, Any]:
    """The same image with another diff_id in its config."""
    import json
    manifest = json.loads(lay.blobs[desc["digest"]])
    config = json.loads(lay.blobs[manifest["config"]["digest"]])
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    body = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": lay.put(body), "size": len(body)}
    mbody = json.dumps(manifest).encode()
    return {**desc, "digest": lay.put(mbody), "size": len(mbody)}


def _nothing_left(cli: Ladle) -> None:
    layers = cli.root / "storage" / "layers"
    assert not layers.exists() or os.listdir(layers) == []
    assert cli("ls", "-q").stdout == ""
    import sqlite3
    db = sqlite3.connect(cli.root / "ladle.db")
    try:
        assert db.execute("SELECT key FROM layers WHERE key LIKE 'layers/%'").fetchall() == []
        assert db.execute("SELECT id FROM ops").fetchall() == []
    finally:
        db.close()


@pytest.mark.parametrize("name", [*HOSTILE, "lying"])
def test_a_hostile_layer_is_refused_and_leaves_nothing(ladle: Ladle, hostile: dict[str, str], name: str,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "ladle.toml"
    conf.write_text("max_tar_members = 30\n")
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    victim = Path("/VICTIM")
    assert not victim.exists()
    why = HOSTILE[name][1] if name in HOSTILE else "diff_id"
    line = ladle.fails("create", "-p", "evil", "--image", hostile[name])
    assert why in line, line
    _nothing_left(ladle)
    line = ladle.fails("run", "--rm", hostile[name])
    assert why in line, line
    _nothing_left(ladle)
    assert not victim.exists()
    assert not (ladle.root.parent / "VICTIM").exists()


def test_a_device_node_under_dev_is_left_out_of_the_layer(ladle: Ladle, hostile: dict[str, str]) -> None:
    """A layer's /dev/mem (as a debootstrapped tree has /dev/null) is not unpacked: no device node
    but overlayfs's 0/0 whiteouts is anywhere in the layers, and the pot's /dev has no mem."""
    ladle("create", "-p", "p", "--image", hostile["dev-mem"])
    nodes = []
    for top, dirs, files in os.walk(ladle.root / "storage"):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and st.st_rdev != 0:
                nodes.append(os.path.join(top, name))
    assert nodes == []
    proc = ladle("run", "--rm", hostile["dev-mem"], "/bin/sh", "-c", "test -e /dev/mem && echo there || echo absent")
    assert proc.stdout.strip() == "absent"
