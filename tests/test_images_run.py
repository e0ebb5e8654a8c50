"""Images run as pots, against real peers: a busybox image that skopeo pushes to Debian's
docker-registry (two layers: a whiteout and an opaque directory in the second; gzip and zstd),
which ladle pulls, unpacks into shared layer snapshots and runs with the config's Entrypoint,
Cmd, Env, WorkingDir and User."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import (
    HOST_ARCH,
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    Layout,
    compress,
    registry,  # noqa: F401  (a fixture)
    sha,
)
from tests.registry_fixtures import Registry as Reg

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = ("sh", "echo", "cat", "ls", "id", "pwd", "env", "true", "test")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nworker:x:1000:1000:worker:/home/worker:/bin/sh\n"
GROUP = b"root:x:0:\nworker:x:1000:\nstaff:x:50:worker\n"


def _add(t: tarfile.TarFile, name: str, kind: str = "f", data: bytes = b"", mode: int = 0o644,
         link: str = "", uid: int = 0) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
               "c": tarfile.CHRTYPE}[kind]
    ti.mode, ti.linkname, ti.uid, ti.gid, ti.mtime = mode, link, uid, uid, 1_700_000_000
    ti.size = len(data) if kind == "f" else 0
    t.addfile(ti, io.BytesIO(data) if kind == "f" else None)


def tar(build: Any) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        build(t)
    return buf.getvalue()


def busybox_layer(t: tarfile.TarFile) -> None:
    """A busybox root: the static binary, its applets as symlinks, passwd, group, and the
    files layer 2 deletes (`etc/gone`) and hides (`opt/old/*`)."""
    for d in ("bin", "etc", "tmp", "opt", "opt/old", "home", "home/worker", "srv"):
        _add(t, d, "d", mode=0o1777 if d == "tmp" else 0o755, uid=1000 if d in ("home/worker", "opt", "srv") else 0)
    _add(t, "bin/busybox", data=Path(BUSYBOX).read_bytes(), mode=0o755)
    for a in APPLETS:
        _add(t, f"bin/{a}", "l", link="busybox")
    _add(t, "etc/passwd", data=PASSWD)
    _add(t, "etc/group", data=GROUP)
    _add(t, "etc/gone", data=b"deleted by layer 2\n")
    _add(t, "opt/old/a", data=b"hidden by layer 2\n")
    _add(t, "opt/old/b", data=b"hidden by layer 2\n")


def second_layer(t: tarfile.TarFile) -> None:
    """A whiteout of etc/gone, opt/old made opaque with one new file, a file of its own."""
    _add(t, "etc/.wh.gone")
    _add(t, "opt/old", "d", mode=0o755, uid=1000)
    _add(t, "opt/old/.wh..wh..opq")
    _add(t, "opt/old/new", data=b"new in layer 2\n")
    _add(t, "srv/motd", data=b"hello from layer 2\n", uid=1000)


def image(lay: Layout, layers: list[bytes], how: str, config: dict[str, Any], os_name: str = "linux") -> dict[str, Any]:
    descs = []
    for raw in layers:
        blob = compress(raw, how)
        descs.append({"mediaType": LAYER[how], "digest": lay.put(blob), "size": len(blob)})
    doc = {"architecture": HOST_ARCH, "os": os_name, "config": config,
           "rootfs": {"type": "layers", "diff_ids": [sha(raw) for raw in layers]}}
    cfg = json.dumps(doc).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": lay.put(cfg), "size": len(cfg)},
                           "layers": descs}).encode()
    return {"mediaType": OCI_MANIFEST, "digest": lay.put(manifest), "size": len(manifest)}


CONFIG = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ['echo "cmd says $GREETING in $(pwd) as $(id -u):$(id -g)"'],
          "Env": ["PATH=/bin", "GREETING=hi there"], "WorkingDir": "/home/worker", "User": "worker",
          "ExposedPorts": {"8080/tcp": {}}, "StopSignal": "SIGINT", "Volumes": {"/srv/vol": {}}}


@pytest.fixture(scope="module")
def pushed(registry: Reg, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    """Refs of the busybox image pushed by skopeo, gzip and zstd."""
    lay = Layout(tmp_path_factory.mktemp("bbimage"))
    layers = [tar(busybox_layer), tar(second_layer)]
    refs = {}
    for how in ("gzip", "zstd"):
        lay.tag(how, image(lay, layers, how, CONFIG))
        registry.push(lay, how, f"test/bb:{how}")
        refs[how] = f"{registry.host}/test/bb:{how}"
    lay.tag("plain", image(lay, layers[:1], "none", {"Cmd": ["/bin/echo", "plain", "a b"]}))
    registry.push(lay, "plain", "test/bb:plain")
    refs["plain"] = f"{registry.host}/test/bb:plain"
    # FreeBSD's release images: a lowercase `cmd` and no Env (oci.md 3.4)
    lay.tag("lower", image(lay, layers[:1], "gzip", {"cmd": ["echo", "from a lowercase cmd"]}))
    lay.tag("freebsd", image(lay, layers[:1], "gzip", {"cmd": ["/bin/sh"]}, os_name="freebsd"))
    for tag in ("lower", "freebsd"):
        registry.push(lay, tag, f"test/bb:{tag}")
        refs[tag] = f"{registry.host}/test/bb:{tag}"
    return refs


def layer_keys(cli: Ladle) -> list[str]:
    top = cli.root / "storage" / "layers"
    return sorted(os.listdir(top)) if top.is_dir() else []


def test_run_pulls_and_runs_the_images_command(ladle: Ladle, pushed: dict[str, str]) -> None:
    out = ladle("run", "--rm", pushed["gzip"])
    assert out.stdout == "cmd says hi there in /home/worker as 1000:1000\n"
    assert ladle("ls", "-q").stdout == ""  # --rm
    assert ladle("images", "--json").stdout.count('"test/bb"') == 1 or "test/bb" in ladle("images").stdout


def test_publish_all_needs_a_bridge_when_the_image_exposes_ports(ladle: Ladle, pushed: dict[str, str]) -> None:
    """The image exposes 8080/tcp: -P on the default network (none) is refused and makes nothing;
    an image that exposes nothing takes -P anywhere (the traffic test is in test_net_cli)."""
    assert "--publish-all: only a pot on a bridge can export ports, not one of -N none" in \
        ladle.fails("run", "--rm", "-P", pushed["gzip"])
    assert ladle("ls", "-q").stdout == ""
    assert ladle("run", "--rm", "-P", pushed["plain"]).stdout == "plain a b\n"


@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_whiteouts_and_opaque_dirs_are_applied(ladle: Ladle, pushed: dict[str, str], how: str) -> None:
    out = ladle("run", "--rm", pushed[how], "ls /opt/old; cat /srv/motd; test -e /etc/gone || echo gone;"
                " test -f /etc/passwd && echo kept")
    assert out.stdout.split("\n") == ["new", "hello from layer 2", "gone", "kept", ""]


def test_args_replace_cmd_and_entrypoint_replaces_entrypoint(ladle: Ladle, pushed: dict[str, str]) -> None:
    assert ladle("run", "--rm", pushed["gzip"], "echo $GREETING").stdout == "hi there\n"
    out = ladle("run", "--rm", "--entrypoint", "/bin/echo", pushed["gzip"], "a  b", "$HOME")
    assert out.stdout == "a  b $HOME\n"  # exec form: no shell split or expanded them
    assert ladle("run", "--rm", "--entrypoint", "/bin/pwd", pushed["gzip"]).stdout == "/home/worker\n"


def test_a_lowercase_cmd_and_no_env_run_with_the_default_path(ladle: Ladle, pushed: dict[str, str]) -> None:
    assert ladle("run", "--rm", pushed["lower"]).stdout == "from a lowercase cmd\n"
    out = ladle("run", "--rm", pushed["lower"], "sh", "-c", "echo $PATH").stdout
    assert "/bin" in out.strip().split(":")


def test_an_image_for_another_os_is_refused(ladle: Ladle, pushed: dict[str, str]) -> None:
    ladle("pull", pushed["freebsd"])  # by tag: a manifest, no index to choose from
    line = ladle.fails("create", "-p", "bsd", "--image", pushed["freebsd"])
    assert line == f"ladle: image {pushed['freebsd']} is for freebsd, not for this linux host"
    assert layer_keys(ladle) == []


def test_stop_sends_the_images_stop_signal(ladle: Ladle, pushed: dict[str, str]) -> None:
    """StopSignal is SIGINT: the command's INT trap runs (TERM would kill it untrapped)."""
    ladle("create", "-p", "sig", "--image", pushed["gzip"], "-c",
          shlex.quote("trap 'echo got INT; exit 0' INT; echo up; while :; do sleep 0.1; done"))
    ladle("start", "sig")
    deadline = time.monotonic() + 10
    while "up" not in ladle("logs", "sig").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    ladle("stop", "sig")
    assert ladle("logs", "sig").stdout == "up\ngot INT\n"


def test_a_volume_is_a_fresh_tmpfs_each_run(ladle: Ladle, pushed: dict[str, str]) -> None:
    ladle("create", "-p", "vol", "--image", pushed["gzip"], "-c", shlex.quote(
        "grep -c ' /srv/vol tmpfs ' /proc/mounts; ls /srv/vol; touch /srv/vol/x"))
    for _ in range(2):
        ladle("start", "vol")
        ladle("wait", "vol", check=False)
        ladle("stop", "vol", check=False)
    assert ladle("logs", "vol").stdout == "1\n1\n"  # mounted, and empty again at the second start


def test_an_exec_form_cmd_needs_no_shell(ladle: Ladle, pushed: dict[str, str]) -> None:
    assert ladle("run", "--rm", pushed["plain"]).stdout == "plain a b\n"


def test_layers_are_shared_and_pruned_only_when_unused(ladle: Ladle, pushed: dict[str, str]) -> None:
    ladle("create", "-p", "one", "--image", pushed["gzip"])
    keys = layer_keys(ladle)
    assert len(keys) == 2
    ladle("create", "-p", "two", "--image", pushed["zstd"])  # same diff_ids: same chain ids
    ladle("pull", pushed["plain"])
    ladle("create", "-p", "three", "--image", pushed["plain"])
    assert layer_keys(ladle) == keys  # the plain image's one layer is the busybox one
    info = ladle("info", "-p", "one").stdout
    assert "8080/tcp" in info and pushed["gzip"].split("/", 1)[1] in info
    line = ladle.fails("rmi", pushed["gzip"])
    assert f"image {pushed['gzip']} is used by pot one: destroy them first, or rmi -f" in line
    ladle("tag", pushed["gzip"], "localhost/other:1")
    ladle("rmi", pushed["gzip"])  # another name keeps the image: only this one goes
    assert "localhost/other" in ladle("images").stdout
    assert "is used by pot one" in ladle.fails("rmi", "localhost/other:1")
    ladle("rmi", "-f", "localhost/other:1")
    ladle("rmi", "-f", pushed["zstd"])
    ladle("rmi", "-f", pushed["plain"])
    ladle("image", "prune")
    assert layer_keys(ladle) == keys  # pots one, two and three use them
    ladle("destroy", "-p", "one")
    ladle("destroy", "-p", "two")
    ladle("image", "prune")
    assert layer_keys(ladle) == keys[:1] or len(layer_keys(ladle)) == 1  # three keeps the bottom layer
    ladle("destroy", "-p", "three")
    assert ladle("image", "prune").stdout == "removed 0 blobs nothing references, 1 layer snapshot removed\n"
    assert layer_keys(ladle) == []


# commit, push, and podman and skopeo as the peers -------------------------------------------------

def podman(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """podman with its own storage under `tmp`, runc and the ulimits this machine allows (host.md)."""
    conf = tmp / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    run = Path("/tmp") / f"lp{abs(hash(str(tmp))) % 10**8}"  # podman wants a runroot under 50 characters
    return subprocess.run(["podman", "--root", str(tmp / "storage"), "--runroot", str(run),
                           "--storage-driver", "vfs", *args], capture_output=True, text=True, timeout=120, env=env)


def test_commit_push_then_podman_runs_it_and_skopeo_copies_it_back(ladle: Ladle, pushed: dict[str, str],
                                                                     registry: Reg, tmp_path: Path) -> None:  # noqa: F811
    script = "echo made >/srv/made; rm /srv/motd; rm -r /opt/old; mkdir /opt/old; echo fresh >/opt/old/only"
    ladle("create", "-p", "work", "--image", pushed["gzip"], "-c", shlex.quote(script))  # -c: the Cmd's words
    ladle("start", "work")
    ladle("wait", "work", check=False)
    ladle("stop", "work", check=False)
    dest = f"{registry.host}/test/committed:1"
    line = ladle("commit", "-p", "work", dest).stdout
    assert line.startswith(f"committed pot work as {dest} (sha256:")
    ladle("push", dest)
    # ladle runs what it committed, from the store
    out = ladle("run", "--rm", dest, "cat /srv/made; ls /opt/old; test -e /srv/motd || echo no-motd").stdout
    assert out == "made\nonly\nno-motd\n"
    # podman pulls it from the registry and runs it: the same tree, the image's user and env
    got = podman(tmp_path, "run", "--rm", "--tls-verify=false", "--network", "none", dest, "cat /srv/made; ls /opt/old;"
                 " test -e /srv/motd || echo no-motd; echo $GREETING; id -u")
    try:
        assert got.returncode == 0, got.stderr
        assert got.stdout == "made\nonly\nno-motd\nhi there\n1000\n"
    finally:
        podman(tmp_path, "rmi", "-a", "-f")
        shutil.rmtree(Path("/tmp") / f"lp{abs(hash(str(tmp_path))) % 10**8}", ignore_errors=True)
    # skopeo copies it back bit for bit: the manifest and every blob are the ones ladle stored
    layout = tmp_path / "back"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{layout}:1"],
                   check=True, capture_output=True, timeout=120)
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    assert line.endswith(f"({digest})\n")
    store = ladle.root / "images" / "blobs" / "sha256"
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert blob.read_bytes() == (store / blob.name).read_bytes()


def test_on_zfs_each_layer_is_a_clone_and_whiteouts_delete(zfs_pool: str, pushed: dict[str, str],
                                                           tmp_path: Path) -> None:
    """ZFS: layer 2 is a clone of layer 1's snapshot with what its whiteouts hide deleted; the
    pot is a clone of layer 2's; prune destroys the layers once nothing uses them."""
    from tests.zfs_pool import run, run_busy
    cli = Ladle(tmp_path / "root")
    dataset = f"{zfs_pool}/img{abs(hash(tmp_path)) % 10**8}"
    cli("init", "--storage", "zfs", "--dataset", dataset)
    try:
        out = cli("run", "--rm", pushed["zstd"], "ls /opt/old; test -e /etc/gone || echo gone").stdout
        assert out == "new\ngone\n"
        layers = run("zfs", "list", "-H", "-o", "name,origin", "-r", f"{dataset}/layers").split("\n")
        rows = [line.split("\t") for line in layers if line.split("\t")[0].count("/") == 3]
        assert len(rows) == 2 and sum(origin != "-" for _, origin in rows) == 1, layers  # the upper is a clone
        cli("rmi", pushed["zstd"])
        assert run("zfs", "list", "-H", "-o", "name", "-r", f"{dataset}/layers").split() == [f"{dataset}/layers"]
    finally:
        for name in cli("ls", "-q", check=False).stdout.split():
            cli("destroy", "-p", name, "-F", check=False)
        run_busy("zfs", "destroy", "-r", dataset)
