"""The FreeBSD driver, tested on any host: plans render to exact commands compared with golden
files (tests/golden/freebsd/<case>.txt; rewrite them with LADLE_UPDATE_GOLDEN=1 and review every
line against the manual pages), every rendered line passes the man-page syntax checker, and
plans run through the Executor with the recording runner issue exactly what they render and
undo in reverse when a step fails."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ladle import _log
from ladle.errors import CommandFailed, HostError, UsageError
from ladle.hosts import open_host
from ladle.hosts.base import RunRecord, RuntimeSpec
from ladle.hosts.freebsd import FreeBSDHost, canonical_release, jailparams
from ladle.hosts.freebsd.bases import release_base_steps, userland_version
from ladle.hosts.freebsd.plans import copy_plan, exec_argv, start_plan, stop_plan
from ladle.hosts.freebsd.steps import (
    BaseVerify,
    JailCopyHostFile,
    JailMain,
    JailNotice,
    JailRelease,
    JailRemove,
    JailUnmount,
    NullfsMount,
    manifest_digest,
)
from ladle.plan.executor import Executor
from ladle.plan.steps import Context, Step
from ladle.storage.snapshotter import Mount
from tests.freebsd_monitor import FreeBSDPots, here
from tests.freebsd_syntax import check_argv, check_jail_conf, check_line, check_rendering, untoken
from tests.recording_runner import Fail, RecordingRunner

GOLDEN = Path(__file__).parent / "golden" / "freebsd"
ROOT = "/var/db/ladle"
SHA = "a" * 64


# Specs built by hand ---------------------------------------------------------------------------

def make_spec(name: str, root: list[Mount] | None = None, mounts: list[Mount] | None = None,
              attrs: dict[str, str] | None = None, **kw: object) -> RuntimeSpec:
    spec = RuntimeSpec(
        name=name, hostname=f"{name}.example.org",
        root=root if root is not None else [Mount("bind", f"{ROOT}/zfs/pots/{name}", "/")],
        mounts=mounts or [], cmd="sh /etc/rc", env={},
        attrs={**jailparams.attr_defaults(), **(attrs or {})}, network="inherit",
        log_path=f"{ROOT}/logs/{name}.log", run_dir=f"{ROOT}/run/{name}")
    return replace(spec, **kw)  # type: ignore[arg-type]


def single_zfs() -> RuntimeSpec:
    """A single pot on its own ZFS dataset, pot's defaults, the host's network."""
    return make_spec("web")


def fscomps() -> RuntimeSpec:
    """pot's multi level-1 layout: base read-only at /, its own usr.local read-write; a read-only
    fscomp and a read-write mount-in of a host directory."""
    return make_spec(
        "app",
        root=[Mount("bind", f"{ROOT}/zfs/bases/14.2", "/", ("ro",)),
              Mount("bind", f"{ROOT}/zfs/pots/app/usr.local", "/usr/local")],
        mounts=[Mount("bind", f"{ROOT}/zfs/fscomps/data", "/data", ("ro",)),
                Mount("bind", "/srv/www", "/usr/local/www")])


def nonpersistent() -> RuntimeSpec:
    """A Nomad-style pot: dies with its command, own network stack with only lo0, environment,
    a command line with quotes, an exec.stop with characters jail.conf must escape."""
    return make_spec(
        "job", attrs={"persistent": "NO", "exec_stop": '/bin/sh -c "echo bye $USER"', "stop_timeout": "30"},
        cmd="nginx -g 'daemon off;'", env={"NGINX_PORT": "8080", "GREETING": "hello world"},
        network="none")


def attrs_on() -> RuntimeSpec:
    """Attributes turned on: mlock, procfs, fdescfs, sysvipc=inherit, mount+nullfs with
    enforce_statfs=1, children, another devfs ruleset, no tmpfs; socket_af and chflags turned
    off; a dual IPv4 and IPv6 stack (and in `sections`, an osrelease as read from the tree)."""
    attrs = {"mlock": "YES", "procfs": "YES", "fdescfs": "YES", "mount": "YES", "nullfs": "YES",
             "enforce_statfs": "1", "children": "2", "devfs_ruleset": "10", "no-tmpfs": "YES",
             "socket_af": "NO", "chflags": "NO", **jailparams.expand_attr("sysvipc", "inherit")}
    return make_spec("lab", attrs=attrs, stack="dual")


LIMITS = {"memory": 512 << 20, "pids": 100, "pcpu": 50, "cpus": [0, 2]}


def limited() -> RuntimeSpec:
    """set-rss: 512M of memory, 100 processes, half a CPU's time, pinned to CPUs 0 and 2."""
    return make_spec("capped", extra={"limits": dict(LIMITS)})


def image_runtime() -> RuntimeSpec:
    """A pot from FreeBSD's freebsd-runtime image: its lowercase `cmd` is ["/bin/sh"], it sets no
    Env (the default PATH is given), no user (root) and no working directory ('/')."""
    return make_spec("rt", root=[Mount("bind", f"{ROOT}/zfs/pots/rt", "/")], argv=["/bin/sh"],
                     attrs={"persistent": "NO"}, network="none")


def image_app() -> RuntimeSpec:
    """A pot from an application image: exec-form Entrypoint and Cmd with spaces and quotes (no
    shell parses them), Env, User and WorkingDir."""
    return make_spec("app", argv=["/usr/local/bin/app", "--greeting", "hello 'world'", "$HOME"],
                     env={"PATH": "/usr/local/bin:/usr/bin:/bin", "APP_MODE": "production"}, user="www",
                     workdir="/usr/local/www")


def image_uid() -> RuntimeSpec:
    """An image whose User is numeric, `UID:GID` (jexec -U takes only names): the monitor's child
    attaches, enters the working directory and takes exactly these ids."""
    return make_spec("num", argv=["/usr/local/bin/app", "serve"], env={"APP_MODE": "production"}, user="1000:1000",
                     workdir="/srv", attrs={"persistent": "NO"}, network="none")


def image_uid_only() -> RuntimeSpec:
    """A numeric User with no group: the uid's group and groups from the jail's passwd."""
    return make_spec("uid", argv=["/bin/sh"], user="4242", attrs={"persistent": "NO"}, network="none")


SPECS: dict[str, Callable[[], RuntimeSpec]] = {
    "single_zfs": single_zfs, "fscomps": fscomps, "nonpersistent": nonpersistent, "attrs": attrs_on,
    "image_runtime": image_runtime, "image_app": image_app, "image_uid": image_uid, "image_uid_only": image_uid_only,
    "limits": limited}
RUNNING = RunRecord("web", "running", main_pid=4242)
ON_EXIT = ["ladle", "--root", ROOT, "--host", "freebsd", "stop"]  # what the monitor runs when a pot ends


# Rendering -------------------------------------------------------------------------------------

def render(steps: list[Step]) -> list[str]:
    return [line for step in steps for line in step.render()]


def sections(case: str) -> dict[str, list[str]]:
    if case in SPECS:
        spec = SPECS[case]()
        host = FreeBSDHost(RecordingRunner(), ROOT)
        osrelease = "13.5-RELEASE" if case == "attrs" else None
        out = {"start": render(start_plan(spec, ON_EXIT, osrelease)), "stop": render(stop_plan(spec, RUNNING)),
               "exec sh": host.exec_render(spec, ["/bin/sh"], tty=True)}
        if case == "single_zfs":
            out["exec with -e"] = [shlex.join(exec_argv(spec, ["env"], {"DEBUG": "1"}))]
        return out
    if case == "copy":
        stopped, running = single_zfs(), single_zfs()
        return {
            "copy-in of a file into a stopped pot, creating parents":
                render(copy_plan(stopped, None, "in", "/etc/hosts", "/usr/local/etc/hosts", True)),
            "copy-in of a directory into a running pot":
                render(copy_plan(running, RUNNING, "in", "/etc", "/opt/etc", False)),
            "copy-out from a running pot": render(copy_plan(running, RUNNING, "out", "/tmp", "/var/log", False)),
            "copy-out from a stopped pot with mounts":
                render(copy_plan(fscomps(), None, "out", "/tmp", "/data/report.csv", False)),
            "copy-out keeping setuid and setgid bits":
                render(copy_plan(running, RUNNING, "out", "/tmp", "/usr/bin/su", False, keep_setuid=True)),
        }
    if case == "rss":
        host = FreeBSDHost(RecordingRunner().answer(r"sysctl -n hw.ncpu", "4\n"), ROOT)
        spec, run = limited(), RunRecord("capped", "running", main_pid=4242)
        lifted = {"memory": None, "pids": 2048, "pcpu": None, "cpus": None, "defaults": ["pids"]}
        return {
            "set-rss -M 1G --pcpu 200 on a running pot":
                render(host.limits_plan(spec, run, {**LIMITS, "memory": 1 << 30, "pcpu": 200}, dict(LIMITS))),
            "set-rss lifting every limit on a running pot (the cpuset back to all 4 CPUs)":
                render(host.limits_plan(spec, run, lifted, dict(LIMITS))),
        }
    if case == "base":
        return {
            "14.2 from the default mirror":
                render(release_base_steps("14.2", f"{ROOT}/zfs/bases/14.2", "/var/cache/ladle")),
            "13.5-rc1 for arm64 from another mirror":
                render(release_base_steps("13.5-rc1", f"{ROOT}/storage/bases/b/fs", "/var/cache/ladle",
                                          "https://mirror.example.org/FreeBSD/releases/", ("arm64", "aarch64"))),
        }
    if case == "layers":
        return image_layers()
    if case == "whiteouts":
        return flagged_whiteouts()
    raise KeyError(case)


def image_layers() -> dict[str, list[str]]:
    """An image's two layers and a pot on them, on ZFS: the first layer a new dataset, the
    second a clone of its snapshot (whiteouts applied by deleting in the full tree), the pot a
    clone of the top one."""
    import tempfile

    from ladle.state.store import Store
    from ladle.storage.layers import SNAP, UnpackLayer, chain_ids, key_of
    from ladle.storage.zfs import ZfsSnapshotter
    diff = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    keys = [key_of(c) for c in chain_ids(diff)]
    blob = f"{ROOT}/images/blobs/sha256/"
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "ladle.db"))
        try:
            snap = ZfsSnapshotter(ROOT, store, "zroot/ladle", RecordingRunner(), offline=True)
            first = [*snap.new(keys[0]), UnpackLayer(blob + "a" * 64, "application/vnd.oci.image.layer.v1.tar+gzip",
                                                     diff[0], snap.path(keys[0]), flags=True),
                     *snap.commit(keys[0], SNAP)]
            store.put("layers", {"key": keys[0]}, {"key": keys[0], "kind": "active", "layout": "full",
                                                   "parent": None, "origin": None})
            store.put("snapshots", {"key": keys[0], "name": SNAP}, {"key": keys[0], "name": SNAP, "created": 0})
            second = [*snap.prepare(keys[1], f"{keys[0]}@{SNAP}"),
                      UnpackLayer(blob + "b" * 64, "application/vnd.oci.image.layer.v1.tar+zstd", diff[1],
                                  snap.path(keys[1]), flags=True), *snap.commit(keys[1], SNAP)]
            store.put("layers", {"key": keys[1]}, {"key": keys[1], "kind": "active", "layout": "full",
                                                   "parent": f"{keys[0]}@{SNAP}", "origin": f"{keys[0]}@{SNAP}"})
            store.put("snapshots", {"key": keys[1], "name": SNAP}, {"key": keys[1], "name": SNAP, "created": 0})
            pot = snap.prepare("pots/web", f"{keys[1]}@{SNAP}")
        finally:
            store.close()
    return {"layer 1 (gzip): a new dataset": render(first), "layer 2 (zstd): a clone of layer 1": render(second),
            "a pot from the image: a clone of layer 2": render(pot)}


def flagged_whiteouts() -> dict[str, list[str]]:
    """A layer over a tree (FreeBSD's, whose libc and /var/empty carry schg) that removes a file
    and a directory, makes one opaque and replaces libc: the commands its unpack really runs, in
    order, before it touches any of them (the tree here is a real one, without flags)."""
    import gzip
    import hashlib
    import io
    import tarfile
    import tempfile

    from ladle.storage.layers import UnpackLayer
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "layer")
        for d in ("bin", "lib", "opt/old/sub", "var/empty", "usr/share/doc"):
            os.makedirs(os.path.join(dest, d))
        for f in ("bin/cat", "lib/libc.so.7", "opt/old/sub/f", "usr/share/doc/README"):
            with open(os.path.join(dest, f), "w") as fh:
                fh.write("lower\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, data in [("bin/.wh.cat", b""), ("usr/share/.wh.doc", b""), ("opt/old/.wh..wh..opq", b""),
                               ("lib/libc.so.7", b"upper\n"), ("var/empty/", None), ("etc/new", b"new\n")]:
                info = tarfile.TarInfo(name.rstrip("/"))
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o555
                else:
                    info.size = len(data)
                t.addfile(info, io.BytesIO(data or b""))
        blob = os.path.join(tmp, "blob")
        with open(blob, "wb") as f:
            f.write(gzip.compress(buf.getvalue()))
        step = UnpackLayer(blob, "application/vnd.oci.image.layer.v1.tar+gzip",
                           "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest(), dest, flags=True)
        runner = RecordingRunner()
        step.apply(Context(runner))
        left = sorted(os.path.relpath(os.path.join(d, n), dest) for d, ds, fs in os.walk(dest) for n in ds + fs)
        assert left == ["bin", "etc", "etc/new", "lib", "lib/libc.so.7", "opt", "opt/old", "usr", "usr/share",
                        "var", "var/empty"], left
        where = f"{ROOT}/zfs/layers/{'3' * 64}"
        return {"what the unpack runs on the host": [c.line.replace(dest, where) for c in runner.calls]}


CASES = [*SPECS, "copy", "base", "layers", "rss", "whiteouts"]


def text_of(case: str) -> str:
    parts = []
    for title, lines in sections(case).items():
        parts.append(f"## {title}\n" + "".join(line + "\n" for line in lines))
    return untoken("\n".join(parts))


@pytest.mark.parametrize("case", CASES)
def test_rendering_matches_the_golden_file(case: str) -> None:
    path = GOLDEN / f"{case}.txt"
    text = text_of(case)
    if os.environ.get("LADLE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with LADLE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_line_passes_the_man_page_checker(case: str) -> None:
    for title, lines in sections(case).items():
        assert check_rendering(lines) == [], title


# Attributes ------------------------------------------------------------------------------------

def test_attr_defaults_are_pots_creation_defaults() -> None:
    assert jailparams.attr_defaults() == {
        "persistent": "YES", "no-tmpfs": "NO", "enforce_statfs": "2", "mount": "NO", "fdescfs": "NO",
        "linprocfs": "NO", "nullfs": "NO", "procfs": "NO", "tmpfs": "NO", "zfs": "NO", "raw_sockets": "YES",
        "socket_af": "YES", "chflags": "YES", "sysvshm": "new", "sysvsem": "new", "sysvmsg": "new",
        "children": "0", "mlock": "NO", "devfs_ruleset": "4", "exec_stop": "", "stop_timeout": "10"}


@pytest.mark.parametrize(("name", "value", "stored"), [
    ("persistent", "yes", "YES"), ("persistent", "Off", "NO"), ("mlock", "TRUE", "YES"), ("zfs", "on", "YES"),
    ("procfs", "false", "NO"), ("stop_timeout", "030", "30"), ("enforce_statfs", "0", "0"),
    ("sysvshm", "Inherit", "inherit"), ("sysvipc", "DISABLE", "disable"), ("exec_stop", "sh /etc/rc.shutdown",
                                                                          "sh /etc/rc.shutdown"),
])
def test_check_attr_normalises(name: str, value: str, stored: str) -> None:
    assert FreeBSDHost(RecordingRunner(), ROOT).check_attr(name, value) == stored


@pytest.mark.parametrize(("name", "value", "message"), [
    ("persistant", "YES", "unknown attribute 'persistant'"), ("mlock", "maybe", "takes yes or no"),
    ("children", "-1", "whole number"), ("enforce_statfs", "3", "from 0 to 2"), ("stop_timeout", "1e3", "whole"),
    ("devfs_ruleset", "70000", "1 to 65535"), ("devfs_ruleset", "0", "1 to 65535"),
    ("sysvmsg", "private", "new, inherit or disable"),
    ("exec_stop", "a\nb", "control characters"), ("sysvipc", "yes", "new, inherit or disable"),
])
def test_check_attr_rejects_with_one_clear_line(name: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as e:
        jailparams.check_attr(name, value)
    assert "\n" not in str(e.value)


def test_pots_always_on_permissions_are_defaults_that_can_be_turned_off() -> None:
    def allows(attrs: dict[str, str]) -> list[str]:
        params = jailparams.create_params("web", "/j", "web", {**jailparams.attr_defaults(), **attrs}, "inherit")
        return [p for p in params if p.startswith("allow.")]

    assert allows({}) == ["allow.set_hostname=false", "allow.raw_sockets", "allow.socket_af", "allow.chflags"]
    assert allows({"raw_sockets": "no", "chflags": "off"}) == ["allow.set_hostname=false", "allow.socket_af"]
    assert allows({"socket_af": "NO", "mlock": "YES"}) == ["allow.set_hostname=false", "allow.mlock",
                                                           "allow.raw_sockets", "allow.chflags"]


@pytest.mark.parametrize(("stack", "params"), [
    ("ipv4", ["ip4=inherit", "ip6=disable"]), ("ipv6", ["ip4=disable", "ip6=inherit"]),
    ("dual", ["ip4=inherit", "ip6=inherit"])])
def test_an_inherited_network_gives_only_the_ip_versions_of_the_stack(stack: str, params: list[str]) -> None:
    assert jailparams.network_params("inherit", stack) == params
    assert jailparams.network_params("none", stack) == ["vnet=new"]
    jail = next(x for x in render(start_plan(make_spec("web", stack=stack), ON_EXIT)) if x.startswith("jail -c"))
    assert jail.endswith(" exec.clean " + " ".join(params))
    with pytest.raises(UsageError, match="network stack 'ip4'"):
        jailparams.network_params("inherit", "ip4")


def test_sysvipc_sets_all_three_even_when_stored_unexpanded() -> None:
    assert jailparams.expand_attr("sysvipc", "Inherit") == {
        "sysvshm": "inherit", "sysvsem": "inherit", "sysvmsg": "inherit"}
    eff = jailparams.effective({**jailparams.attr_defaults(), "sysvipc": "disable"})
    assert [eff[n] for n in jailparams.SYSV_ATTRS] == ["disable"] * 3


def test_exec_stop_is_quoted_for_jail_conf() -> None:
    conf = jailparams.stop_config("job", 'echo "a\\b" $HOME', "5")
    assert 'exec.stop = "echo \\"a\\\\b\\" \\$HOME";' in conf
    assert check_jail_conf(conf.splitlines()) == []


def test_open_host_gives_the_freebsd_driver() -> None:
    host = open_host("freebsd", RecordingRunner(), ROOT)
    assert isinstance(host, FreeBSDHost)
    assert host.name == "freebsd"


def test_unsupported_layouts_are_refused() -> None:
    with pytest.raises(UsageError, match="overlay layers need Linux"):
        start_plan(make_spec("x", root=[Mount("overlay", "overlay", "/", ("lowerdir=/a",))]), ON_EXIT)
    with pytest.raises(UsageError, match="network public-bridge without an address"):
        start_plan(make_spec("x", network="public-bridge"), ON_EXIT)
    with pytest.raises(UsageError, match=r"must not contain '\.\.'"):
        start_plan(make_spec("x", mounts=[Mount("bind", "/srv", "/a/../../etc")]), ON_EXIT)


# Bases -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "canonical"), [
    ("14.2", "14.2-RELEASE"), ("14.2-RELEASE", "14.2-RELEASE"), ("14.2-release", "14.2-RELEASE"),
    ("13.5-RC1", "13.5-RC1"), ("15.0-beta3", "15.0-BETA3"), (" 13.4 ", "13.4-RELEASE")])
def test_release_names_are_canonical(given: str, canonical: str) -> None:
    assert canonical_release(given) == canonical


@pytest.mark.parametrize("bad", ["14", "14.2-STABLE", "14.2-RELEASE-p3", "../14.2", "14.2/x", "", "latest"])
def test_bad_release_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid FreeBSD release"):
        canonical_release(bad)


USERLAND = ('#!/bin/sh\nset -ef\n\nUSERLAND_VERSION="14.2-RELEASE-p1"\n\n: ${ROOT:=}\n'
            'userland_version() {\n\techo $USERLAND_VERSION\n}\n')


def tree_with(tmp_path: Path, text: str = USERLAND) -> Path:
    (tmp_path / "tree" / "bin").mkdir(parents=True)
    (tmp_path / "tree" / "bin" / "freebsd-version").write_text(text)
    return tmp_path / "tree"


def test_osrelease_is_the_userland_version_of_the_pots_tree(tmp_path: Path) -> None:
    tree = tree_with(tmp_path)
    host = FreeBSDHost(RecordingRunner(), ROOT)
    jail = next(line for line in render(host.start_plan(make_spec("web", root=[Mount("bind", str(tree), "/")])))
                if line.startswith("jail -c"))
    assert f"path={tree} host.hostname=web.example.org osrelease=14.2-RELEASE-p1 persist " in jail
    assert check_line(jail) == []
    base = make_spec("app", root=[Mount("bind", str(tree), "/", ("ro",)), Mount("bind", "/u", "/usr/local")])
    assert any("osrelease=14.2-RELEASE-p1" in line for line in render(host.start_plan(base)))  # from the base
    empty = make_spec("web", root=[Mount("bind", str(tmp_path / "nothing"), "/")])
    assert not any(" osrelease=" in line for line in render(host.start_plan(empty)))  # the host's own, then


@pytest.mark.parametrize("plant", ["absolute link", "relative link", "fifo", "bad value"])
def test_osrelease_is_never_read_outside_the_tree_nor_from_anything_but_a_file(tmp_path: Path, plant: str) -> None:
    host_file = tmp_path / "host-freebsd-version"
    host_file.write_text('USERLAND_VERSION="99.9-HOST"\n')
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    target = tree / "bin" / "freebsd-version"
    if plant == "absolute link":
        os.symlink(host_file, target)
    elif plant == "relative link":
        os.symlink("../" * 12 + str(host_file).lstrip("/"), target)
    elif plant == "fifo":
        os.mkfifo(target)  # reading it would block for ever
    else:
        target.write_text('USERLAND_VERSION="14.2-RELEASE path=/etc"\n')
    assert userland_version(str(tree)) is None


def test_the_release_directory_is_this_hosts_machine_unless_the_setting_says() -> None:
    runner = RecordingRunner().answer(r"^uname -m$", "arm64\n").answer(r"^uname -p$", "aarch64\n")
    steps = FreeBSDHost(runner, ROOT).release_base_steps("14.2", "/d", "/c", "")
    assert runner.lines == ["uname -m", "uname -p"]
    assert "https://download.freebsd.org/releases/arm64/aarch64/14.2-RELEASE/base.txz" in render(steps)[2]
    quiet = RecordingRunner()
    for host, url in ((FreeBSDHost(quiet, ROOT, "riscv"), "/riscv/riscv64/"),
                      (FreeBSDHost(quiet, ROOT, offline=True), "/amd64/amd64/")):
        assert url in render(host.release_base_steps("14.2", "/d", "/c", ""))[2]
    assert quiet.lines == []  # the setting, or a dry run from another host: nothing asked
    odd = RecordingRunner().answer(r"^uname -m$", "amd64\n").answer(r"^uname -p$", "x86 64\n")
    with pytest.raises(UsageError, match="invalid architecture 'x86 64'"):
        FreeBSDHost(odd, ROOT).release_base_steps("14.2", "/d", "/c", "")


def test_bad_mirror_is_refused() -> None:
    with pytest.raises(UsageError, match="mirror"):
        release_base_steps("14.2", "/d", "/c", "download.freebsd.org/releases")


MANIFEST = (f"base-dbg.txz\t{'b' * 64}\t123\tbase-dbg\t\"Base system (Debugging)\"\toff\n"
            f"base.txz\t{SHA}\t29000\tbase\t\"Base system (MANDATORY)\"\ton\n")


def test_manifest_lines_are_read_by_name() -> None:
    assert manifest_digest(MANIFEST, "base.txz") == SHA
    with pytest.raises(HostError, match=r"no line for kernel\.txz"):
        manifest_digest(MANIFEST, "kernel.txz")


def test_a_download_with_the_wrong_digest_is_removed() -> None:
    runner = RecordingRunner().answer(r"^cat ", MANIFEST).answer(r"^sha256 ", "c" * 64 + "\n")
    step = BaseVerify("/c/14.2-RELEASE/base.txz", "/c/14.2-RELEASE/MANIFEST")
    with pytest.raises(HostError, match=r"damaged.*was removed"):
        step.apply(Context(runner))
    assert runner.lines[-1] == "rm -f /c/14.2-RELEASE/base.txz"
    good = RecordingRunner().answer(r"^cat ", MANIFEST).answer(r"^sha256 ", SHA + "\n")
    step.apply(Context(good))
    assert good.argvs == [a for a in step.argvs()]


# Executing plans with the recording runner and a real monitor -----------------------------------

MONITOR_STEPS = (JailMain, JailNotice, JailRelease)


def runner_argvs(steps: list[Step]) -> list[list[str]]:
    """What the steps run through the runner, in order (the monitor's steps run nothing here)."""
    out: list[list[str]] = []
    for step in steps:
        if not isinstance(step, MONITOR_STEPS):
            out += step.argvs()  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("case", [c for c in SPECS if not c.startswith("image_")])  # they name /usr/sbin/jexec
def test_start_runs_exactly_what_it_renders(case: str, freebsd: FreeBSDPots, tmp_path: Path) -> None:
    spec = here(SPECS[case](), freebsd)
    freebsd.runner.answer(r"^sysctl -n kern.racct.enable$", "1\n")
    steps = start_plan(spec, [])
    Executor(freebsd.ctx).run("start", f"pot:{spec.name}", steps)
    assert freebsd.runner.argvs == runner_argvs(steps)
    main = steps[-1]
    assert isinstance(main, JailMain) and check_argv(main.argv) == []
    row = freebsd.wait_ended(spec.name)  # run here: nginx is a fake that ends at once, /etc/rc is missing
    assert row["main_pid"] and row["exit_code"] == (0 if "nginx" in spec.cmd else 2)
    assert (tmp_path / "jexec.log").read_text() == shlex.join(main.argv) + "\n"
    assert main.render()[-1].startswith(shlex.join(main.argv) + " </dev/null >")


def test_rendered_commands_are_the_recorded_ones_line_by_line(freebsd: FreeBSDPots, tmp_path: Path) -> None:
    spec = here(nonpersistent(), freebsd)
    steps = start_plan(spec, [])
    Executor(freebsd.ctx).run("start", "pot:job", steps)
    rendered = [line for line in render(steps) if not line.startswith("#")]
    freebsd.wait_ended("job")
    started = (tmp_path / "jexec.log").read_text().splitlines()
    assert [line.split(" </dev/null")[0] for line in rendered] == [*freebsd.runner.lines, *started]
    assert not any("nopersist" in line for line in rendered)  # the jail goes with `jail -r`, by the monitor's teardown


def test_a_failing_jail_create_unmounts_everything_in_reverse(freebsd: FreeBSDPots) -> None:
    spec = here(fscomps(), freebsd)
    runner = freebsd.runner.answer(r"^jail -c ", Fail("jail: jail_set: Operation not permitted"))
    steps = start_plan(spec, [])
    with pytest.raises(CommandFailed, match="jail failed: jail: jail_set: Operation not permitted"):
        Executor(freebsd.ctx).run("start", "pot:app", steps)
    done = runner.lines[:runner.lines.index(next(x for x in runner.lines if x.startswith("jail -c")))]
    undone = runner.lines[len(done) + 1:]
    jail = f"{spec.run_dir}/root"
    assert [x for x in done if x.startswith("mount")] == [
        f"mount_nullfs -o ro {ROOT}/zfs/bases/14.2 {jail}",
        f"mount_nullfs {ROOT}/zfs/pots/app/usr.local {jail}/usr/local",
        f"mount_nullfs -o ro {ROOT}/zfs/fscomps/data {jail}/data",
        f"mount_nullfs /srv/www {jail}/usr/local/www",
        f"mount -t tmpfs tmpfs {jail}/tmp"]
    assert undone == [f"umount {jail}/tmp", f"umount {jail}/usr/local/www", f"umount {jail}/data",
                      f"umount {jail}/usr/local", f"umount {jail}"]
    assert freebsd.store.get("runs", pot="app") is None  # the monitor started nothing


def test_a_command_that_cannot_start_removes_the_jail_then_the_mounts(freebsd: FreeBSDPots,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec = here(nonpersistent(), freebsd)
    monkeypatch.setenv("PATH", "/nonexistent")  # the monitor's jexec is found on the PATH it started with
    with pytest.raises(HostError, match="cannot run 'jexec': No such file or directory"):
        Executor(freebsd.ctx).run("start", "pot:job", start_plan(spec, []))
    jail = spec.root[0].source
    lines = freebsd.runner.lines
    after = lines[lines.index("ifconfig -j job lo0 inet 127.0.0.1/8 up") + 1:]
    assert after == ["jail -f - -q -r job", f"umount {jail}/dev", f"umount {jail}/tmp"]
    remove = freebsd.runner.calls[-3]
    assert remove.input is not None and b"stop.timeout = 30;" in remove.input
    assert b'exec.stop = "/bin/sh -c \\"echo bye \\$USER\\"";' in remove.input


def test_the_hosts_resolv_conf_is_copied_into_the_pot_without_following_its_links(tmp_path: Path) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    os.symlink(str(host_etc / "shadow"), tree / "etc" / "resolv.conf")  # replaced by cp -f, not followed
    runner = RecordingRunner()
    step = next(s for s in start_plan(make_spec("web", root=[Mount("bind", str(tree), "/")]), ON_EXIT)
                if isinstance(s, JailCopyHostFile))
    assert step.render() == [f"cp -f /etc/resolv.conf {tree}/etc/resolv.conf"]
    step.apply(Context(runner))
    assert runner.lines == step.render()
    (tree / "etc").rename(tree / "etc.old")
    os.symlink(str(host_etc), tree / "etc")  # /etc leads out of the pot: resolved inside, it is not there
    step.apply(Context(runner))
    assert runner.lines == step.render()  # nothing more ran
    read_only = make_spec("app", root=[Mount("bind", "/b", "/", ("ro",)), Mount("bind", "/p", "/usr/local")])
    assert not any(isinstance(s, JailCopyHostFile) for s in start_plan(read_only, ON_EXIT))
    etc_rw = replace(read_only, mounts=[Mount("bind", "/srv/etc", "/etc")])
    assert any(isinstance(s, JailCopyHostFile) for s in start_plan(etc_rw, ON_EXIT))


def test_stop_runs_what_it_renders_and_feeds_jail_its_stop_settings(freebsd: FreeBSDPots) -> None:
    spec = here(nonpersistent(), freebsd)
    steps = stop_plan(spec, RUNNING)
    Executor(freebsd.ctx).run("stop", "pot:job", steps, on_crash="finish")
    assert freebsd.runner.argvs == runner_argvs(steps)
    remove = freebsd.runner.calls[0]
    assert remove.input is not None
    assert check_jail_conf(remove.input.decode().splitlines()) == []


def test_stop_after_a_crash_tolerates_what_is_already_gone(freebsd: FreeBSDPots) -> None:
    spec = here(single_zfs(), freebsd)
    jail = spec.root[0].source
    (freebsd.runner.answer(r"^jail -f - -q -r web$", Fail('jail: "web" not found'))
     .answer(r"^jls -j web jid$", Fail("jls: jail \"web\" not found", stdout=""))
     .answer(r"^umount ", Fail("umount: not a file system root directory"))
     .answer(r"^mount -p$", f"zroot/ladle/pots/web\t{jail}\tzfs\trw\t0 0\n"))
    freebsd.store.put("runs", {"pot": "web"}, {"pot": "web", "state": "running", "main_pid": 4242, "main_start": 1,
                                              "persistent": 1})
    steps = stop_plan(spec, RUNNING)
    Executor(freebsd.ctx).run("stop", "pot:web", steps, on_crash="finish")
    assert freebsd.runner.lines == ["jail -f - -q -r web", "jls -j web jid", "rctl -r jail:web",
                                    f"umount {jail}/dev", "mount -p", f"umount {jail}/tmp", "mount -p"]
    assert freebsd.row("web")["state"] == "stopped"  # no monitor knew it: the plan records the end


def test_stop_fails_when_a_mount_is_still_there() -> None:
    jail = f"{ROOT}/zfs/pots/web"
    runner = (RecordingRunner()
              .answer(r"^umount .*/tmp$", Fail("umount: unmount of /tmp failed: Device busy"))
              .answer(r"^mount -p$", f"tmpfs\t{jail}/tmp\ttmpfs\trw\t0 0\n"))
    with pytest.raises(CommandFailed, match="Device busy"):
        JailUnmount(jail, "/tmp").apply(Context(runner))


def test_removing_a_jail_that_is_still_there_is_an_error() -> None:
    runner = (RecordingRunner().answer(r"^jail -f", Fail("jail: web: exec.stop failed"))
              .answer(r"^jls ", "7\n"))
    with pytest.raises(CommandFailed, match=r"exec\.stop failed"):
        JailRemove("web").apply(Context(runner))


def test_copy_into_a_stopped_pot_runs_what_it_renders() -> None:
    runner = RecordingRunner()
    steps = copy_plan(fscomps(), None, "in", "/etc/hosts", "/usr/local/etc/hosts", True)
    Executor(Context(runner)).run("copy-in", "pot:app", steps)
    assert runner.argvs == runner_argvs(steps)


def nullfs_sources(lines: list[str]) -> list[tuple[str, str]]:
    """(source, options) of every mount_nullfs a rendering runs."""
    return [(argv[-2], " ".join(argv[1:-2])) for argv in map(shlex.split, lines) if argv[0] == "mount_nullfs"]


@pytest.mark.parametrize("running", [True, False])
def test_a_copy_shows_the_jail_only_a_fresh_stage_holding_what_is_copied(running: bool, tmp_path: Path) -> None:
    """copy-in of /etc/hosts used to nullfs-mount the host's whole /etc into the jail, and copy-out
    mounted the destination directory read-write into it: both go through a private stage now."""
    run = RUNNING if running else None
    pot = f"{ROOT}/zfs/pots/web"
    lines = render(copy_plan(single_zfs(), run, "in", "/etc/hosts", "/etc/hosts", False))
    stage = shlex.split(lines[1])[-1]
    assert re.fullmatch(rf"{ROOT}/run/web/copy\.[0-9a-f]{{8}}", stage)
    assert lines[:3] == [f"mkdir -p -m 700 {ROOT}/run/web", f"mkdir -m 700 {stage}", f"cp -a /etc/hosts {stage}/"]
    assert nullfs_sources(lines) == [(stage, "-o ro")]
    assert lines[-2:] == [f"chflags -R -x noschg {stage}", f"rm -rf {stage}"]
    out = render(copy_plan(single_zfs(), run, "out", str(tmp_path), "/var/log/messages", False))
    stage = shlex.split(out[1])[-1]
    assert nullfs_sources(out) == [(stage, "")]  # read-write, and empty
    cp_in_jail = next(i for i, x in enumerate(out) if "/bin/cp -a /var/log/messages /tmp/ladle-copy-out." in x)
    unmounted = out.index(f"umount {pot}/tmp/{os.path.basename(shlex.split(out[3])[-1])}")
    assert cp_in_jail < unmounted < out.index(f"cp -a {stage}/messages {tmp_path}/")  # out of the jail's reach
    assert out[-2:] == [f"chflags -R -x noschg {stage}", f"rm -rf {stage}"]
    first, second = (copy_plan(single_zfs(), run, "in", "/etc/hosts", "/x", False)[0] for _ in range(2))
    assert first != second  # a fresh stage every time


def test_a_failed_copy_unmounts_and_removes_its_stage() -> None:
    runner = RecordingRunner().answer(r"/bin/cp ", Fail("cp: /opt/etc: Permission denied"))
    steps = copy_plan(single_zfs(), RUNNING, "in", "/etc", "/opt/etc", False)
    with pytest.raises(CommandFailed, match="Permission denied"):
        Executor(Context(runner)).run("copy-in", "pot:web", steps)
    tmp = next(s for s in runner.lines if s.startswith("mount_nullfs")).split()[-1]
    stage = runner.argvs[1][-1]
    assert runner.lines[-4:] == [f"umount {tmp}", f"rmdir {tmp}", f"chflags -R -x noschg {stage}", f"rm -rf {stage}"]
    for step in steps:
        assert Step.from_json(step.to_json()) == step  # the undo survives a crash, too


def test_a_copy_out_that_cannot_reach_its_destination_removes_its_stage() -> None:
    runner = RecordingRunner().answer(r"^cp -a .*/copy\.[0-9a-f]{8}/log /", Fail("cp: /log: Read-only file system"))
    steps = copy_plan(single_zfs(), RUNNING, "out", "/", "/var/log", False)
    with pytest.raises(CommandFailed, match="Read-only"):
        Executor(Context(runner)).run("copy-out", "pot:web", steps)
    stage = runner.argvs[1][-1]
    assert runner.lines[-2:] == [f"chflags -R -x noschg {stage}", f"rm -rf {stage}"]


def test_copy_in_removes_what_the_pot_planted_at_a_destination_instead_of_writing_through_it() -> None:
    """cp without -f opened a FIFO the pot planted at the destination (and hung) or a device node
    (and wrote into it); with -f it removes the name and creates a new file."""
    for run in (None, RUNNING):
        lines = render(copy_plan(single_zfs(), run, "in", "/etc/hosts", "/etc/hosts", False))
        [cp] = [line for line in lines if "/bin/cp " in line]
        assert "/bin/cp -a -f /tmp/ladle-copy-in." in cp


def test_copy_in_refuses_a_special_host_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="a FIFO, socket or device"):
        copy_plan(single_zfs(), None, "in", str(tmp_path / "fifo"), "/x", False)


def test_copy_out_drops_setuid_after_the_stage_leaves_the_jail_and_before_the_host_copy() -> None:
    runner = RecordingRunner()
    steps = copy_plan(single_zfs(), RUNNING, "out", "/tmp", "/usr/bin/su", False)
    Executor(Context(runner)).run("copy-out", "pot:web", steps)
    stage = runner.argvs[1][-1]
    lines = runner.lines
    strip = lines.index(f"find -x {stage}/su -perm +6000 '!' -type l -exec chmod ug-s '{{}}' +")
    assert next(i for i, x in enumerate(lines) if x.startswith("umount ")) < strip
    assert strip < lines.index(f"cp -a {stage}/su /tmp/")
    kept = render(copy_plan(single_zfs(), RUNNING, "out", "/tmp", "/usr/bin/su", False, keep_setuid=True))
    assert not [line for line in kept if "chmod" in line]


def test_copy_out_refuses_a_special_file_and_warns_of_those_in_a_tree(caplog: pytest.LogCaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "to_presenter", None)  # an in-process CLI run earlier may have set its printer
    runner = RecordingRunner().answer(r"^test -f ", Fail())
    steps = copy_plan(single_zfs(), RUNNING, "out", "/tmp", "/var/run/fifo", False)
    with pytest.raises(UsageError, match=r"pot web: /var/run/fifo: a FIFO, socket or device"):
        Executor(Context(runner)).run("copy-out", "pot:web", steps)
    stage = runner.argvs[1][-1]
    assert not [line for line in runner.lines if line.startswith(f"cp -a {stage}/")]
    assert runner.lines[-2:] == [f"chflags -R -x noschg {stage}", f"rm -rf {stage}"]
    steps = copy_plan(single_zfs(), RUNNING, "out", "/tmp", "/var/run", False)
    stage = shlex.split(render(steps)[1])[-1]
    runner = RecordingRunner().answer(r"^find .* -delete$", f"{stage}/run/fifo\n")
    with caplog.at_level("WARNING", logger="ladle"):
        Executor(Context(runner)).run("copy-out", "pot:web", steps)
    assert "run/fifo: a FIFO, socket or device, not copied" in caplog.text


def test_copy_arguments_are_checked() -> None:
    with pytest.raises(UsageError, match="absolute path"):
        copy_plan(single_zfs(), None, "in", "/etc/hosts", "etc/hosts", False)
    with pytest.raises(UsageError, match="existing host directory"):
        copy_plan(single_zfs(), None, "out", "/etc/hosts", "/etc/hosts", False)
    with pytest.raises(UsageError, match=r"must not contain '\.\.'"):
        copy_plan(single_zfs(), None, "in", "/etc/hosts", "/etc/../../x", False)


def test_alive_asks_for_the_jail() -> None:
    host = FreeBSDHost(RecordingRunner().answer(r"^jls -j web jid$", "3\n"), ROOT)
    assert host.alive(RUNNING)
    assert not FreeBSDHost(RecordingRunner(), ROOT).alive(RUNNING)


def test_steps_survive_the_intent_log() -> None:
    for case in SPECS:
        spec = SPECS[case]()
        for step in [*start_plan(spec, ON_EXIT), *stop_plan(spec, RUNNING)]:
            assert Step.from_json(step.to_json()) == step


# The syntax checker itself ---------------------------------------------------------------------

GOOD = [
    "jail -c name=web path=/j host.hostname=web persist mount.devfs devfs_ruleset=4 vnet=new",
    "jail -c path=/j ip4=disable command=/bin/cp -a /a /b",
    "jail -m name=web nopersist",
    "jail -m jid=3 allow.nomount allow.mount.nozfs allow.raw_sockets=false",
    "jail -r web", "jail -R '*'", "jail -f - -q -r web", "jail -c -J /var/run/j.jid name=a persist meta.owner=me",
    "jexec -l -U root web /bin/sh", "jexec -d / -u root 3 /usr/bin/env -i A=1 /bin/sh -c 'exec nginx'",
    "jls -j web jid", "jls -n -j web path name",
    "mount_nullfs -o ro /a /b", "mount_nullfs /a /b", "mount -t tmpfs -o mode=1777,size=64m tmpfs /j/tmp",
    "mount -p", "umount /j/tmp", "umount -f /j", "umount -a -t nullfs",
    "zfs create -p -o mountpoint=/var/db/ladle/zfs -o atime=off zroot/ladle",
    "zfs destroy -r zroot/ladle/pots/web", "zfs snapshot -r zroot/ladle/pots/web@1700000000",
    "zfs clone -o readonly=on zroot/ladle/bases/b@1 zroot/ladle/pots/web", "zfs rollback -r zroot/a@1",
    "zfs promote zroot/ladle/pots/web", "zfs rename zroot/a zroot/b", "zfs rename zroot/a@1 zroot/a@2",
    "zfs send -R zroot/a@1", "zfs send -i @1 zroot/a@2", "zfs receive -F -u zroot/b", "zfs recv -d zroot",
    "zfs list -H -o name,origin -t filesystem,snapshot -r zroot/ladle", "zfs set mountpoint=/x zroot/a",
    "zfs get -H -o value mountpoint zroot/a", "zfs inherit -r mountpoint zroot/a",
    "fetch -o /c/MANIFEST https://download.freebsd.org/releases/amd64/amd64/14.2-RELEASE/MANIFEST",
    "fetch -a -q --timeout=30 -o /c/base.txz https://x.example/base.txz",
    "sha256 -q /c/base.txz", "tar -x -p -f /c/base.txz -C /d", "tar -xpf /c/base.txz -C /d",
    "tar -t -f /c/base.txz", "mkdir -p /a/b", "rmdir /a", "rm -f /a", "cat /a", "chflags -R noschg /d",
    "uname -m", "uname -p", "uname -mp", "uname -K", "cp -f /etc/resolv.conf /j/etc/resolv.conf", "cp -a /a /b/",
]
BAD = [
    ("jail name=web persist", "one of -c, -e, -m, -r"),
    ("jail -c name=web path=/j", "needs persist, exec.start or command"),
    ("jail -c name=web persist allow.mlocks", "unknown jail parameter 'allow.mlocks'"),
    ("jail -c name=web persist enforce_statfs=3", "enforce_statfs takes 0|1|2"),
    ("jail -c name=web persist vnet=yes", "vnet takes inherit|new"),
    ("jail -c name=web persist devfs_ruleset=four", "unsigned number"),
    ("jail -c name=web persist path=relative", "absolute path"),
    ("jail -c name=web.a persist", "contain no '.'"),
    ("jail -c name=web persist mount.devfs=yes", "is boolean"),
    ("jail -c name=web persist children.cur=1", "read-only"),
    ("jail -c name=web persist host.hostname", "needs a value"),
    ("jail -m nopersist", "needs name= or jid="),
    ("jail -r name=web", "parameters are only given"),
    ("jail -r", "needs a jail name"),
    ("jail -x -c name=a persist", "unknown option -x"),
    ("jexec -U root -u root web sh", "exclude each other"),
    ("jexec -Z web sh", "unknown option -Z"),
    ("jexec", "expected at least 1"),
    ("jexec web /usr/bin/env -X sh", "unknown option -X"),
    ("jexec web /bin/sh -c", "needs a command string"),
    ("jexec web /sbin/ifconfig lo0 inet 127.0.0.300/8 up", "invalid inet address"),
    ("jail -c path=/j persist command=/bin/cp /a", "expected at least 2"),
    ("mount_nullfs -o ro /a", "expected 2"),
    ("mount_nullfs -o readonly /a /b", "unknown mount option 'readonly'"),
    ("mount_nullfs -r /a /b", "unknown option -r"),
    ("mount_nullfs /a b", "not an absolute path"),
    ("mount -t tmpfs tmpfs /a /b", "expected 0 to 2"),
    ("umount", "expected at least 1"),
    ("umount -R /a", "unknown option -R"),
    ("zfs create", "expected 1"),
    ("zfs frobnicate zroot", "unknown or unchecked zfs subcommand"),
    ("zfs create -o atime zroot/a", "property=value"),
    ("zfs destroy -x zroot/a", "unknown option -x"),
    ("zfs snapshot zroot/a", "dataset@name"),
    ("zfs clone zroot/a zroot/b", "needs a snapshot first"),
    ("zfs set zroot/a", "needs property=value"),
    ("zfs list -H -o name /not/a/dataset", "not a dataset"),
    ("fetch -o /c/base.txz", "expected at least 1 URLs"),
    ("fetch -Z https://x.example/a", "unknown option -Z"),
    ("fetch --frobnicate https://x.example/a", "unknown option --frobnicate"),
    ("fetch -o /c/x download.freebsd.org/x", "not a URL"),
    ("sha256 -z /a", "unknown option -z"),
    ("tar -f /c/base.txz -C /d", "exactly one mode"),
    ("tar -x -P -f /c/base.txz -C /d", "policy: -P"),
    ("tar -x --absolute-paths -f /c/base.txz -C /d", "policy: --absolute-paths"),
    ("tar -x -U -f /c/base.txz -C /d", "policy: -U"),
    ("tar -x -C /d", "policy: give the archive with -f"),
    ("mkdir", "expected at least 1"),
    ("chflags -R noschgg /d", "unknown file flag"),
    ("uname -M", "unknown option -M"), ("uname -m amd64", "expected 0 operands"),
    ("cp /etc/resolv.conf", "expected at least 2"), ("cp --remove-destination /a /b", "unknown option --"),
    ("frobnicate /a", "no checker"),
    ("mount_nullfs 'unterminated", "does not parse"),
]


@pytest.mark.parametrize("line", GOOD)
def test_checker_accepts_documented_lines(line: str) -> None:
    assert check_line(line) == []


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_checker_rejects_undocumented_lines(line: str, problem: str) -> None:
    problems = check_line(line)
    assert any(problem in p for p in problems), problems


def test_checker_reads_here_documents_and_comments() -> None:
    good = ["# a comment", "jail -f - -q -r web <<'EOF'", "web {", '    exec.stop = "sh /etc/rc.shutdown";',
            "    stop.timeout = 10;", "    exec.clean;", "}", "EOF", "umount /j/dev"]
    assert check_rendering(good) == []
    bad = ["jail -f - -q -r web <<'EOF'", "web {", "    stop.timeuot = 10;", "    exec.stop = \"a;", "}", "EOF"]
    problems = check_rendering(bad)
    assert any("unknown jail parameter 'stop.timeuot'" in p for p in problems), problems
    assert any("unterminated" in p for p in problems), problems
    assert check_rendering(["umount /a <<'EOF'", "x", "EOF"]) != []


def test_a_mount_point_that_leads_to_the_jails_root_is_refused(freebsd: FreeBSDPots, tmp_path: Path) -> None:
    """`ln -s / /evil` in the pot, then mount-in at /evil: the host directory would become the jail's root."""
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink("/", tree / "evil")
    os.symlink("../..", tree / "up")
    for target in ("/evil", "/up"):
        with pytest.raises(HostError, match=f"mount point {target} leads to the pot's root directory"):
            Executor(freebsd.ctx).run("start", "pot:app", [NullfsMount("/srv", str(tree), target)])
    assert not [line for line in freebsd.runner.lines if line.startswith("mount")]


def test_set_rss_count_pins_the_cpus_the_fewest_running_jails_use() -> None:
    """`-C 2` on a 4-CPU host where jail `a` is pinned to 0,1 and `b` to 0 (and `c` runs on all
    of them, and the pot's own old jail on 2,3 does not count): CPUs 2 and 3, as potcpu picks."""
    from types import SimpleNamespace

    from ladle.engine import rss
    from ladle.hosts.freebsd.rctl import JailLimits
    runner = (RecordingRunner().answer(r"sysctl -n hw.ncpu", "4\n").answer(r"^jls name$", "a\nb\nc\ncapped\n")
              .answer(r"cpuset -g -j a$", "jail 1 mask: 0, 1\n")
              .answer(r"cpuset -g -j b$", "jail 2 mask: 0\njail 2 domain policy: first-touch mask: 0\n")
              .answer(r"cpuset -g -j c$", "jail 3 mask: 0-3\n")
              .answer(r"cpuset -g -j capped$", "jail 4 mask: 2, 3\n"))
    host = FreeBSDHost(runner, ROOT)
    eng = SimpleNamespace(offline=False, host=host, cfg=SimpleNamespace(pids_limit=2048))
    limits = rss.resolve(eng, {"name": "capped", "attrs": {"rss.cpus": "2"}})  # type: ignore[arg-type]
    assert limits["cpus"] == [2, 3]
    runner.answer(r"cpuset -g -j capped$", Fail("cpuset: jail not found"))  # a jail gone meanwhile is skipped
    runner.answer(r"cpuset -g -j c$", "jail 3 mask: 2, 3\n")
    assert rss.resolve(eng, {"name": "web", "attrs": {"rss.cpus": "1"}})["cpus"] == [1]  # type: ignore[arg-type]
    rendered = render([JailLimits("capped", limits)])
    assert "cpuset -l 2,3 -j capped" in rendered
    asked = [c.argv for c in runner.calls if c.argv[0] in ("cpuset", "jls")]
    assert ["cpuset", "-g", "-j", "a"] in asked and not any("-l" in a for a in asked)  # it only reads
    for argv in asked + [shlex.split(x) for x in rendered if x.startswith("cpuset")]:
        assert check_argv(argv) == [], argv


# Numeric image users -----------------------------------------------------------------------------

class _Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, object]]] = []

    def request(self, op: str, fds: object = (), **args: object) -> dict[str, object]:
        self.requests.append((op, args))
        return {}


def test_a_numeric_image_user_reaches_the_monitor_as_ids_and_a_name_as_jexec_u() -> None:
    from ladle.hosts.freebsd.steps import JailMain
    for spec, creds, argv in [
            (image_uid(), {"uid": 1000, "gid": 1000, "workdir": "/srv", "env": {
                "PATH": "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin", "HOME": "/root",
                "APP_MODE": "production"}}, ["/usr/local/bin/app", "serve"]),
            (image_app(), {}, None)]:
        (main,) = [s for s in start_plan(spec, ON_EXIT) if isinstance(s, JailMain)]
        mon = _Recorder()
        main.apply(Context(RecordingRunner(), monitor=lambda m=mon: m))  # type: ignore[misc]
        ((op, args),) = mon.requests
        assert op == "spawn" and args["creds"] == creds
        if argv:
            assert args["argv"] == argv and args["env"] == creds["env"]
        else:
            assert "-U" in args["argv"] and "www" in args["argv"]  # type: ignore[operator]


@pytest.mark.parametrize("user", ["1000:staff", "1000:", "99999999999", "1:4294967295", "www:wheel"])
def test_a_user_freebsd_cannot_run_as_is_refused_in_one_line(user: str) -> None:
    with pytest.raises(UsageError, match="image user"):
        start_plan(replace(image_uid(), user=user), ON_EXIT)


def test_the_monitors_child_takes_exactly_the_numeric_ids() -> None:
    """`_become` for real (it is POSIX: the Linux host runs it too, in a forked child): a given
    gid is the only group; without one, a uid the passwd lacks gets gid 0 and no other group."""
    import pwd

    from ladle.hosts.freebsd.launch import _become
    unknown = next(u for u in range(4242, 5000) if not _has(pwd, u))
    for uid, gid, expect in [(65534, 65534, (65534, 65534, [65534])), (unknown, None, (unknown, 0, [0]))]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _become(uid, gid, "/tmp")
                os.write(w, repr((os.getuid(), os.getgid(), os.getgroups(), os.getcwd())).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            got = f.read()
        os.waitpid(pid, 0)
        assert got == repr((*expect, "/tmp"))


def _has(pwd: object, uid: int) -> bool:
    try:
        pwd.getpwuid(uid)  # type: ignore[attr-defined]
        return True
    except KeyError:
        return False
