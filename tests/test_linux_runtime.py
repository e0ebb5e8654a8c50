# ruff: noqa: F811  (the fixtures are imported below so the module also runs without conftest)
"""The Linux runtime for real: namespaces, mounts, capabilities, supervision, exec, copy, bases.

Runs as root against a busybox base built by the driver itself; no mocks. Every test is checked
for leftovers (processes, mounts) by the `pots` fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from ladle import platform as proc
from ladle.errors import HostError, StateError, UsageError
from ladle.hosts.base import RunRecord
from ladle.hosts.linux import LinuxHost, caps, rootfs
from ladle.hosts.linux import busybox as bb
from ladle.hosts.linux.container import command_argv
from ladle.hosts.linux.steps import (
    LinuxCgroup,
    LinuxEnter,
    LinuxLimits,
    LinuxMain,
    LinuxSandbox,
    spec_from_json,
    spec_to_json,
)
from ladle.plan.runner import SubprocessRunner
from ladle.plan.steps import Step
from ladle.storage.snapshotter import Mount
from tests.linux_fixtures import Pots, busybox_root, pots, wait_pid  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _comm(pid: int | None) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


# Start, records, what the pot sees -----------------------------------------------------------

def test_start_returns_running_with_pids_recorded(pots: Pots) -> None:
    run = pots.start(pots.spec("sleep 1000"))
    assert run.state == "running"
    assert proc.alive(run.init_pid, run.init_start)
    assert proc.alive(run.monitor_pid, run.monitor_start)
    assert run.main_pid and proc.alive(run.main_pid, run.main_start)
    # pid 1 is catatonit, exec'd from a sealed memfd: no host binary, no host environment
    assert _comm(run.init_pid) == "memfd:catatonit"
    assert os.readlink(f"/proc/{run.init_pid}/exe").startswith("/memfd:catatonit")
    assert Path(f"/proc/{run.init_pid}/cmdline").read_bytes() == b"catatonit\0-P\0"
    assert Path(f"/proc/{run.init_pid}/environ").read_bytes() == b""
    assert Path(f"/proc/{run.monitor_pid}/cmdline").read_bytes().rstrip(b"\0") == f"ladle-mon {pots.base}".encode()
    assert _comm(run.main_pid) == "sleep"  # exec'd already when start returned
    assert pots.host.alive(run)
    assert pots.row()["started"]
    # pid 1 is in a new pid namespace, and the main process is the monitor's child, born in it
    assert os.readlink(f"/proc/{run.init_pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    status = Path(f"/proc/{run.main_pid}/status").read_text()
    assert f"NSpid:\t{run.main_pid}\t2" in status
    assert f"PPid:\t{run.monitor_pid}" in status
    pots.stop(pots.specs["web"])
    assert pots.run().state == "stopped"
    assert not pots.host.alive(run)


def test_pot_sees_itself_isolated(pots: Pots) -> None:
    script = ("hostname; cat /proc/1/comm; echo pid=$$; ls /sys/class/net; cat /sys/class/net/lo/flags;"
              " grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs)' /proc/self/status;"
              " touch /sys/kernel/x 2>/dev/null && echo sys-writable || echo sys-ro;"
              " echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sysctl-writable || echo sysctl-ro;"
              " ls /dev; readlink /dev/ptmx; cat /proc/self/mountinfo | wc -l >/dev/null; echo done")
    spec = pots.spec(f"sh -c \"{script}\"")
    pots.start(spec)
    run = pots.wait_exit()
    assert run.state == "exited" and run.exit_code == 0
    lines = pots.log().splitlines()
    assert lines[0] == "web.pots.test"
    assert lines[1] == "memfd:catatonit"
    assert lines[2] == "pid=2"  # the main process; pid 1 is catatonit
    assert lines[3] == "lo"  # own network namespace: loopback only ...
    assert int(lines[4], 16) & 1  # ... and up
    want = f"{caps.mask(False):016x}"
    fields = dict(line.split(":\t") for line in lines[5:11])
    assert fields == {"CapInh": want, "CapPrm": want, "CapEff": want, "CapBnd": want,
                      "CapAmb": "0" * 16, "NoNewPrivs": "1"}
    assert "sys-ro" in lines and "sysctl-ro" in lines
    devs = set(lines[lines.index("sysctl-ro") + 1:])
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdin",
            "stdout", "stderr"} <= devs
    assert "pts/ptmx" in lines
    assert lines[-1] == "done"


def test_docker_default_capabilities_less_mknod_documented() -> None:
    assert caps.mask(False) == 0xA80425FB & ~(1 << 27)  # Docker's default set without MKNOD
    assert caps.mask(True) == (0xA80425FB & ~(1 << 27)) | (1 << 14)
    for name in caps.DEFAULT:
        assert name in (caps.__doc__ or "")


def test_mlock_adds_ipc_lock_and_sysvipc_inherit_shares_ipc(pots: Pots) -> None:
    spec = pots.spec("sleep 1000", mlock="YES", sysvipc="inherit")
    run = pots.start(spec)
    status = Path(f"/proc/{run.main_pid}/status").read_text()
    assert f"CapEff:\t{caps.mask(True):016x}" in status
    assert os.readlink(f"/proc/{run.main_pid}/ns/ipc") == os.readlink("/proc/self/ns/ipc")
    assert os.readlink(f"/proc/{run.main_pid}/ns/uts") != os.readlink("/proc/self/ns/uts")


def test_inherit_network_serves_the_host(pots: Pots) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (pots.upper() / "www").mkdir(parents=True)
    (pots.upper() / "www" / "index.html").write_text("hello from the pot\n")
    spec = pots.spec("sleep 1000", network="inherit")
    run = pots.start(spec)
    assert os.readlink(f"/proc/{run.main_pid}/ns/net") == os.readlink("/proc/self/ns/net")
    # httpd without -f returns once it listens (it daemonises inside the pot)
    assert pots.exec(spec, ["httpd", "-p", f"127.0.0.1:{port}", "-h", "/www"]) == 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        reply = b""
        while data := c.recv(65536):
            reply += data
    assert b"200 OK" in reply and b"hello from the pot" in reply
    # a pot with its own network namespace cannot reach it
    other = pots.spec(f"sh -c 'wget -q -T 1 -O - http://127.0.0.1:{port}/ || echo unreachable'", name="other")
    pots.start(other)
    pots.wait_exit("other")
    assert "unreachable" in pots.log("other")


# Logs and exit codes ---------------------------------------------------------------------------

def test_logs_capture_stdout_and_stderr_and_exit_code(pots: Pots) -> None:
    pots.start(pots.spec("sh -c 'echo to-out; echo to-err >&2; exit 7'"))
    run = pots.wait_exit()
    assert run.state == "exited" and run.exit_code == 7
    assert pots.log() == "to-out\nto-err\n"
    assert pots.row()["finished"]


def test_log_appends_across_runs(pots: Pots) -> None:
    spec = pots.spec("echo once")
    pots.start(spec)
    pots.wait_exit()
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == "once\nonce\n"


def test_env_and_plain_command_exec_directly(pots: Pots) -> None:
    assert command_argv("sleep 5") == (["sleep", "5"], None)
    assert command_argv("nginx -g 'daemon off;'") == (["/bin/sh", "-c", "exec nginx -g 'daemon off;'"],
                                                      "nginx")
    assert command_argv("trap '' TERM; sleep 1") == (["/bin/sh", "-c", "trap '' TERM; sleep 1"], None)
    assert command_argv("echo a; exit 4") == (["/bin/sh", "-c", "echo a; exit 4"], None)  # a list
    assert command_argv("a | b") == (["/bin/sh", "-c", "a | b"], None)
    assert command_argv("httpd -f >/log 2>&1") == (["/bin/sh", "-c", "exec httpd -f >/log 2>&1"], "httpd")
    assert command_argv("echo 'a; b'") == (["/bin/sh", "-c", "exec echo 'a; b'"], "echo")
    pots.start(pots.spec("env", env={"FOO": "bar baz"}))
    pots.wait_exit()
    env = dict(line.split("=", 1) for line in pots.log().splitlines())
    assert env["FOO"] == "bar baz"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOME"] == "/root" and env["HOSTNAME"] == "web.pots.test"


# Stop ------------------------------------------------------------------------------------------

def test_stop_is_fast_for_a_process_that_obeys_sigterm(pots: Pots) -> None:
    spec = pots.spec("sleep 1000", persistent="YES")
    pots.start(spec)
    t = time.monotonic()
    pots.stop(spec)
    assert time.monotonic() - t < 1
    run = pots.run()
    assert run.state == "stopped" and run.exit_code == 128 + signal.SIGTERM


def test_stop_kills_a_process_that_ignores_sigterm_after_the_timeout(pots: Pots) -> None:
    spec = pots.spec("trap '' TERM; echo trapped; sleep 1000", stop_timeout="1")
    run = pots.start(spec)
    pots.wait_log("trapped")
    t = time.monotonic()
    pots.stop(spec)
    took = time.monotonic() - t
    assert 1 <= took < 5
    assert pots.run().state == "stopped"
    assert pots.run().exit_code == 128 + signal.SIGKILL
    assert not proc.alive(run.init_pid, run.init_start)


def test_stop_is_idempotent(pots: Pots) -> None:
    spec = pots.spec("sleep 1000")
    run = pots.start(spec)
    pots.stop(spec)
    pots.stop(spec)
    pots.host.stop_plan(spec, run)[0].apply(pots.ctx)  # with the stale record too
    assert pots.run().state == "stopped"


def test_a_killed_monitor_is_replaced_and_the_pot_adopted(pots: Pots) -> None:
    spec = pots.spec("sh -c 'mkfifo /go; echo one; read x < /go; echo two; exit 6'", persistent="YES")
    run = pots.start(spec)
    pots.wait_log("one")
    os.kill(run.monitor_pid or 0, signal.SIGKILL)
    wait_pid(run.monitor_pid, run.monitor_start)
    assert pots.host.alive(run)  # the pot outlives its monitor ...
    pots.monitor.close()
    assert pots.exec(spec, ["sh", "-c", "echo go > /go"]) == 0  # ... the keeper starts another
    assert pots.run().monitor_pid != run.monitor_pid  # ... which adopted it
    pots.monitor.request("wait", pot="web")
    assert pots.run().exit_code == 6 and pots.log() == "one\ntwo\n"  # nothing lost
    assert pots.run().state == "running"  # persistent: the pot outlives its command
    pots.stop(spec)  # ... and stop finishes it
    assert not pots.host.alive(run)
    assert not proc.alive(run.main_pid, run.main_start)
    assert pots.run().state == "stopped"


def test_everything_killed_leaves_no_mount(pots: Pots) -> None:
    spec = pots.spec("sleep 1000", mounts=[Mount("tmpfs", "tmpfs", "/scratch", ())])
    run = pots.start(spec)
    for pid in (run.monitor_pid, run.init_pid):
        os.kill(pid or 0, signal.SIGKILL)
    wait_pid(run.init_pid, run.init_start)
    wait_pid(run.monitor_pid, run.monitor_start)
    pots.monitor.close()
    pots.stop(spec)  # the fixture checks that no mount and no process is left


# Persistent pots and exec ---------------------------------------------------------------------

def test_persistent_pot_outlives_its_command_and_exec_works(pots: Pots) -> None:
    spec = pots.spec("true", persistent="YES")
    run = pots.start(spec)
    wait_pid(run.main_pid, None)  # the command is done ...
    assert pots.host.alive(run)  # ... the pot is not
    assert pots.run().state == "running"
    assert pots.exec(spec, ["sh", "-c", "hostname; exit 5"]) == 5
    pots.stop(spec)
    assert pots.run().state == "stopped" and pots.run().exit_code == 0


def test_exec_runs_inside_with_the_pots_limits(pots: Pots, capfd: pytest.CaptureFixture[str]) -> None:
    spec = pots.spec("sleep 1000")
    pots.start(spec)
    code = pots.exec(spec, ["sh", "-c", "hostname; echo $FOO; cat /proc/1/comm;"
                            " grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; pwd; exit 3"], env={"FOO": "given"})
    assert code == 3
    out = capfd.readouterr().out.splitlines()
    assert out == ["web.pots.test", "given", "memfd:catatonit", f"CapEff:\t{caps.mask(False):016x}",
                   "NoNewPrivs:\t1", "/"]
    with pytest.raises(HostError, match="cannot run 'nosuch': No such file or directory"):
        pots.exec(spec, ["nosuch"])
    assert pots.exec(spec, ["sh", "-c", "kill -9 $$"]) == 137


def test_exec_with_a_terminal(pots: Pots, capfd: pytest.CaptureFixture[str]) -> None:
    spec = pots.spec("sleep 1000")
    pots.start(spec)
    assert pots.exec(spec, ["sh", "-c", "tty; exit 4"], tty=True) == 4
    assert capfd.readouterr().out.strip() == "/dev/pts/0"  # the pot's own devpts


def test_exec_on_a_stopped_pot_is_refused(pots: Pots) -> None:
    spec = pots.spec("true")
    pots.start(spec)
    pots.wait_exit()
    with pytest.raises(StateError, match="not running"):
        pots.exec(spec, ["true"])


def test_exec_render_is_nsenter(pots: Pots) -> None:
    spec = pots.spec("sleep 1")
    spec.extra["init_pid"] = 4242
    join, note, line = pots.host.exec_render(spec, ["ls", "-l"], tty=False)
    assert join.startswith("echo $$ > ") and join.split()[3].endswith("/web/cgroup.procs")
    assert "seccomp filter" in note
    assert pots.host.exec_render(pots.spec("sleep 1", seccomp="unconfined"), ["ls"], tty=False)[1].startswith("nsenter")
    assert line.startswith("nsenter --target 4242 --mount --uts --ipc --net --pid --root --wd=/ -- setpriv "
                           "--bounding-set=-all,+chown,")
    assert " --no-new-privs -- env -i " in line and line.endswith(" ls -l")


# Start failures ------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["nosuch", "nosuch --opt 'quoted; arg'"])
def test_start_reports_why_the_command_cannot_run(pots: Pots, cmd: str) -> None:
    with pytest.raises(HostError, match=r"^pot web: cannot run 'nosuch': No such file or directory$"):
        pots.start(pots.spec(cmd))
    row = pots.row()
    assert row["state"] == "failed" and "cannot run 'nosuch'" in str(row["error"])
    assert pots.monitor.request("status")["pots"] == {}  # its pid 1 went with the failed start


def test_start_reports_a_bad_mount(pots: Pots, tmp_path: Path) -> None:
    spec = pots.spec("true", mounts=[Mount("bind", str(tmp_path / "missing"), "/data", ())])
    with pytest.raises(HostError, match=r"pot web: cannot mount .*missing on /data: No such file"):
        pots.start(spec)


def test_sysvipc_disable_is_refused(pots: Pots) -> None:
    with pytest.raises(UsageError, match="not supported on linux"):
        pots.host.start_plan(pots.spec("true", sysvipc="disable"))


# Mounts ------------------------------------------------------------------------------------------

def test_read_only_bind_mount_and_symlinked_mountpoint_stay_inside(pots: Pots, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("shared\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    # the image tries to redirect the mount point to a host directory
    (pots.upper() / "mnt").mkdir(parents=True)
    os.symlink(str(outside), pots.upper() / "mnt" / "abs")
    os.symlink("../../../../../../../../" + str(outside).lstrip("/"), pots.upper() / "mnt" / "rel")
    mounts = [Mount("bind", str(data), "/mnt/abs/data", ("ro",)),
              Mount("tmpfs", "tmpfs", "/mnt/rel/scratch", ())]
    spec = pots.spec("sh -c 'cat /mnt/abs/data/file; touch /mnt/abs/data/new 2>/dev/null || echo ro;"
                     " ls -d /mnt/rel/scratch'", root="overlay", mounts=mounts)
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == "shared\nro\n/mnt/rel/scratch\n"
    assert list(outside.iterdir()) == []  # nothing was mounted or created on the host
    assert (pots.upper() / str(outside).lstrip("/") / "data").is_dir()


def test_read_only_root(pots: Pots) -> None:
    spec = pots.spec("sh -c 'touch /x 2>/dev/null || echo read-only'", root="bind")
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == "read-only\n"
    assert not (pots.tree / "etc" / "resolv.conf").exists()  # a read-only /etc keeps what it has


# The host's DNS -------------------------------------------------------------------------------

def _state(paths: list[Path]) -> dict[Path, tuple[bytes, int, int]]:
    """Content, mode and mtime of host files, to show a pot changed none of them."""
    return {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in paths if p.is_file()}


def test_the_pot_gets_the_hosts_resolv_conf(pots: Pots) -> None:
    spec = pots.spec("cat /etc/resolv.conf")
    render = [line for op in rootfs.plan(spec) for line in op.render("/R")]
    assert "cp --remove-destination /etc/resolv.conf /R/etc/resolv.conf" in render
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == Path("/etc/resolv.conf").read_text()
    copied = pots.upper() / "etc" / "resolv.conf"
    assert copied.is_file() and not copied.is_symlink()
    assert stat.S_IMODE(copied.stat().st_mode) == stat.S_IMODE(os.stat("/etc/resolv.conf").st_mode) & ~0o022


@pytest.mark.parametrize("plant", ["absolute", "relative", "directory"])
def test_a_planted_resolv_conf_link_is_replaced_and_the_host_untouched(pots: Pots, tmp_path: Path,
                                                                        plant: str) -> None:
    """The pot's etc/resolv.conf points at a host file (like /etc/shadow; here a decoy, so that a
    bug could not hurt this machine), or at /etc: the link is replaced, nothing is followed."""
    decoy = tmp_path / "shadow"
    decoy.write_text("root:secret:19000::::::\n")
    host = [decoy, *(Path(p) for p in ("/etc/shadow", "/etc/passwd", "/etc/resolv.conf"))]
    before = _state(host)
    spec = pots.spec("cat /etc/resolv.conf")
    (pots.upper() / "etc").mkdir()
    target = {"absolute": str(decoy), "relative": "../" * 12 + str(decoy).lstrip("/"), "directory": "/etc"}[plant]
    os.symlink(target, pots.upper() / "etc" / "resolv.conf")
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == Path("/etc/resolv.conf").read_text()
    copied = pots.upper() / "etc" / "resolv.conf"
    assert not copied.is_symlink() and copied.read_text() == Path("/etc/resolv.conf").read_text()
    assert _state(host) == before
    assert not (pots.upper() / str(decoy).lstrip("/")).exists()  # not followed inside the pot either


def test_a_pot_whose_etc_leads_out_of_it_gets_no_resolv_conf(pots: Pots, tmp_path: Path) -> None:
    spec = pots.spec("sh -c 'cat /etc/resolv.conf 2>/dev/null || echo none'")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), pots.upper() / "etc")  # resolves inside the pot, where it does not exist
    pots.start(spec)
    pots.wait_exit()
    assert pots.log() == "none\n"
    assert list(outside.iterdir()) == []


# Copy in and out ------------------------------------------------------------------------------

def _copy(pots: Pots, direction: str, host: Path | str, pot: str, parents: bool = False,
          running: bool = False) -> None:
    spec = pots.specs["web"]
    run = pots.run() if running else None
    for step in pots.host.copy_plan(spec, run, direction, str(host), pot, parents):
        step.apply(pots.ctx)


@pytest.mark.parametrize("running", [False, True])
def test_copy_in_and_out_never_leaves_the_pot(pots: Pots, tmp_path: Path, running: bool) -> None:
    spec = pots.spec("sleep 1000", persistent="YES")
    up = pots.upper()
    (up / "a" / "b").mkdir(parents=True)
    os.symlink("/", up / "a" / "b" / "abs")
    os.symlink("../../../../../../..", up / "a" / "b" / "rel")
    (up / "etc").mkdir()
    (up / "etc" / "motd").write_text("pot motd\n")
    secret = pots.base / "web" / "run" / "secret"  # where ../.. from the pot's root would land
    secret.parent.mkdir(parents=True)
    secret.write_text("host secret\n")
    if running:
        pots.start(spec)
    src = tmp_path / "src.txt"
    src.write_text("from host\n")
    os.chmod(src, 0o640)
    os.utime(src, (1_000_000_000, 1_000_000_000))
    for dest in ("/a/b/abs/in-abs.txt", "/a/b/rel/in-rel.txt"):
        _copy(pots, "in", src, dest, running=running)
    assert (up / "in-abs.txt").read_text() == "from host\n"
    assert (up / "in-rel.txt").read_text() == "from host\n"
    st = (up / "in-abs.txt").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1_000_000_000
    assert not (pots.base / "web" / "run" / "in-rel.txt").exists()
    # copy-out through the same links reads the pot's files, never the host's
    out = tmp_path / "out"
    out.mkdir()
    _copy(pots, "out", out / "motd", "/a/b/rel/etc/motd", running=running)
    assert (out / "motd").read_text() == "pot motd\n"
    with pytest.raises(UsageError, match="no such file"):
        _copy(pots, "out", out / "s", "/a/b/rel/secret", running=running)
    assert not (out / "s").exists()
    # a symlink at the destination is replaced, never followed
    os.symlink("/etc/passwd-nope", up / "trap")
    _copy(pots, "in", src, "/trap", running=running)
    assert not (up / "trap").is_symlink() and (up / "trap").read_text() == "from host\n"
    if running:
        assert pots.exec(spec, ["cat", "/in-rel.txt"]) == 0


def test_copy_trees_links_and_parents(pots: Pots, tmp_path: Path) -> None:
    pots.spec("true")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("f\n")
    os.symlink("/etc/shadow", tree / "link")
    os.chmod(tree / "sub", 0o750)
    with pytest.raises(UsageError, match="no such directory"):
        _copy(pots, "in", tree, "/new/place/tree")
    _copy(pots, "in", tree, "/new/place/tree", parents=True)
    got = pots.upper() / "new" / "place" / "tree"
    assert (got / "sub" / "f").read_text() == "f\n"
    assert os.readlink(got / "link") == "/etc/shadow"  # copied as a link, not followed
    assert stat.S_IMODE((got / "sub").stat().st_mode) == 0o750
    out = tmp_path / "back"
    out.mkdir()
    _copy(pots, "out", out, "/new/place/tree")
    assert (out / "tree" / "sub" / "f").read_text() == "f\n"
    assert os.readlink(out / "tree" / "link") == "/etc/shadow"
    with pytest.raises(UsageError, match="no such file"):
        _copy(pots, "in", tmp_path / "missing", "/x")


def test_copy_render(pots: Pots) -> None:
    spec = pots.spec("true")
    lines = pots.host.copy_plan(spec, None, "in", "/etc/hosts", "/etc/hosts", True)[0].render()
    assert lines[0].startswith("# descriptor by descriptor, never following a symlink")
    assert lines[1] == "unshare --mount --propagation private"
    assert any(line.startswith("mount -t overlay") for line in lines)
    assert lines[-1].startswith("cp -a --no-dereference --remove-destination /etc/hosts ")
    out = pots.host.copy_plan(spec, None, "out", "/tmp", "/usr/bin/su", False)[0].render()
    assert out[-1] == "find /tmp/su -perm /6000 '!' -type l -exec chmod ug-s '{}' +"  # drops setuid, setgid ...
    kept = pots.host.copy_plan(spec, None, "out", "/tmp", "/usr/bin/su", False, keep_setuid=True)[0].render()
    assert kept[-1].startswith("cp -a ")  # ... unless asked to keep them


# Plans, attributes, bases --------------------------------------------------------------------

def test_start_is_split_around_host_side_steps_and_renders_exact_commands(pots: Pots) -> None:
    spec = pots.spec("nginx -g 'daemon off;'", mounts=[Mount("bind", "/srv", "/srv", ("ro",))])
    steps = pots.host.start_plan(spec)
    assert [type(s) for s in steps] == [LinuxCgroup, LinuxLimits, LinuxSandbox, LinuxEnter, LinuxMain]
    lines = [line for s in steps for line in s.render()]
    root = f"{pots.base}/run/web/root"
    assert "unshare --pid --fork --mount --uts --ipc --net --propagation private" in lines
    assert "ip link set lo up" in lines  # by pid 1, in the pot's new network namespace
    for want in (f"mount -t overlay -o lowerdir={pots.tree},upperdir={pots.base}/web/upper,"
                 f"workdir={pots.base}/web/work overlay {root}",
                 f"mount --rbind /srv {root}/srv", f"mount -o remount,bind,ro {root}/srv",
                 f"mount -t proc -o nosuid,nodev,noexec proc {root}/proc",
                 f"mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs {root}/dev",
                 f"mknod -m 666 {root}/dev/null c 1 3", f"ln -s pts/ptmx {root}/dev/ptmx",
                 f"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs {root}/sys",
                 f"mount --bind /dev/null {root}/proc/kcore", "hostname web.pots.test", f"cd {root}",
                 "pivot_root . .", "umount -l ."):
        assert want in lines, want
    assert any(line.startswith("exec setpriv --bounding-set=-all,+chown,") and "+net_bind_service" in line
               and line.endswith("-- env -i catatonit -P  # from a sealed copy in memory") for line in lines)
    main = lines[-1]
    assert main.startswith('nsenter --target "$PID1" --mount --uts --ipc --net --pid --root --wd=/ -- setpriv ')
    assert "exec nginx -g" in main and "daemon off;" in main and main.endswith(f"2>{pots.base}/run/web/err.fifo")
    # no step pretends: each renders what it does
    assert not any("illustrative" in line for line in lines)
    for step in steps:
        assert Step.from_json(step.to_json()) == step
    assert spec_from_json(spec_to_json(spec)) == spec
    assert [type(s).__name__ for s in steps[0].inverse()] == ["LinuxCgroupRemove"]
    assert steps[1].inverse() == []  # the cgroup's removal takes its limits with it
    assert [type(s).__name__ for s in steps[2].inverse()] == ["LinuxDiscard"]
    assert [type(s).__name__ for s in steps[-1].inverse()] == ["LinuxStop"]
    stop = pots.host.stop_plan(spec, RunRecord("web", "running", init_pid=1234, main_pid=1236))
    assert stop[0].render() == ["kill -TERM 1236", "# if it still runs after 10s (waited for on a pidfd, not polled):",
                                "kill -KILL 1234"]
    assert [type(s).__name__ for s in stop] == ["LinuxStop", "LinuxCgroupRemove"]


def test_inherit_network_has_no_host_side_step(pots: Pots) -> None:
    steps = pots.host.start_plan(pots.spec("true", network="inherit", sysvipc="inherit"))
    assert [type(s) for s in steps] == [LinuxCgroup, LinuxLimits, LinuxSandbox, LinuxEnter, LinuxMain]
    assert steps[2].render()[1] == "unshare --pid --fork --mount --uts --propagation private"


def test_attributes() -> None:
    host = LinuxHost(SubprocessRunner(), "/nonexistent")
    assert host.attr_defaults() == {"persistent": "YES", "procfs": "YES", "fdescfs": "YES", "mlock": "NO",
                                    "sysvipc": "new", "stop_timeout": "10", "exec_stop": "", "seccomp": "default"}
    for value, want in (("yes", "YES"), ("On", "YES"), ("TRUE", "YES"), ("off", "NO"),
                        ("False", "NO"), ("no", "NO")):
        assert host.check_attr("persistent", value) == want
    assert host.check_attr("stop_timeout", "30") == "30"
    assert host.check_attr("sysvipc", "Inherit") == "inherit"
    assert host.check_attr("exec_stop", "nginx -s quit") == "nginx -s quit"
    assert host.check_attr("seccomp", "Unconfined") == "unconfined"
    assert host.check_attr("stop_timeout", "86400") == "86400"
    for name, value, msg in (("stop_timeout", "-1", "number"), ("stop_timeout", "soon", "number"),
                             ("stop_timeout", "86401", "from 0 to 86400"),
                             ("stop_timeout", "99999999999999999999999", "from 0 to 86400"),
                             ("stop_timeout", "\u0661", "number"), ("seccomp", "off", "default or unconfined"),
                             ("mlock", "maybe", "yes or no"), ("persistent", "1", "yes or no"),
                             ("sysvipc", "disable", "not supported on linux"),
                             ("sysvipc", "shared", "new or inherit"), ("nosuch", "1", "unknown attribute"),
                             ("enforce_statfs", "1", "FreeBSD jail parameter"),
                             ("sysvshm", "new", "not supported on linux")):
        with pytest.raises(UsageError, match=msg):
            host.check_attr(name, value)


def test_busybox_base(busybox_root: Path) -> None:
    assert os.readlink(busybox_root / "bin" / "sh") == "/bin/busybox"
    assert os.readlink(busybox_root / "usr" / "bin" / "wget") == "/bin/busybox"
    assert stat.S_IMODE((busybox_root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((busybox_root / "root").stat().st_mode) == 0o700
    for d in ("proc", "sys", "dev", "etc", "var", "usr/bin", "usr/sbin"):
        assert (busybox_root / d).is_dir()
    assert "ID=ladle-busybox" in (busybox_root / "etc" / "os-release").read_text().splitlines()
    assert (busybox_root / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert "localhost" in (busybox_root / "etc" / "hosts").read_text()
    assert (busybox_root / "etc" / "group").read_text().startswith("root:x:0:")


def test_busybox_base_refusals(tmp_path: Path) -> None:
    host = LinuxHost(SubprocessRunner(), str(tmp_path))
    with pytest.raises(UsageError, match="-r takes 'busybox'; use --from-tar FILE"):
        host.release_base_steps("13.2", str(tmp_path), "", "")
    assert bb.is_static("/bin/busybox")
    assert not bb.is_static("/bin/ls")
    with pytest.raises(HostError, match="dynamically linked"):
        bb.check("/bin/ls")
    text = tmp_path / "text"
    text.write_text("#!/bin/sh\n" + "x" * 100)
    with pytest.raises(HostError, match="not an ELF"):
        bb.is_static(str(text))
    lines = host.release_base_steps("busybox", str(tmp_path / "b"), "", "")[0].render()
    assert lines[0].startswith("mkdir -p -m 755 ")
    assert any(line.startswith("cp /") and "busybox " in line for line in lines)
    assert "--list-full" in lines[-1] and "ln -s /bin/busybox" in lines[-1]


def test_exec_stop_runs_inside_before_sigterm(pots: Pots) -> None:
    spec = pots.spec("sleep 1000", exec_stop="echo exec-stop on $(hostname)")
    pots.start(spec)
    pots.stop(spec)
    assert pots.log() == "exec-stop on web.pots.test\n"
    assert pots.run().state == "stopped"


def test_copy_in_creates_parents_through_a_dangling_link_inside_the_pot(pots: Pots, tmp_path: Path) -> None:
    pots.spec("true")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), pots.upper() / "escape")  # dangling inside the pot
    src = tmp_path / "f"
    src.write_text("in the pot\n")
    _copy(pots, "in", src, "/escape/deeper/f", parents=True)
    assert list(outside.iterdir()) == []
    assert (pots.upper() / str(outside).lstrip("/") / "deeper" / "f").read_text() == "in the pot\n"
