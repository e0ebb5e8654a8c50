# ruff: noqa: F811  (the fixtures are imported below so the module also runs without conftest)
"""The Linux runtime for real: namespaces, mounts, capabilities, supervision, exec, copy, bases.

Runs as root against a busybox base built by the driver itself; no mocks. Every test is checked
for leftovers (processes, mounts) by the `pots` fixture.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from ladle import proc
from ladle.errors import HostError, StateError, UsageError
from ladle.hosts.base import RunRecord
from ladle.hosts.linux import LinuxHost, caps
from ladle.hosts.linux import busybox as bb
from ladle.hosts.linux.container import command_argv
from ladle.hosts.linux.steps import LinuxStart, spec_from_json, spec_to_json
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
    assert proc.alive(run.supervisor_pid, run.supervisor_start)
    assert run.main_pid and proc.alive(run.main_pid, None)
    assert _comm(run.init_pid) == "ladle-init web"
    assert Path(f"/proc/{run.init_pid}/cmdline").read_bytes().rstrip(b"\0") == b"ladle-init web"
    assert Path(f"/proc/{run.supervisor_pid}/cmdline").read_bytes().rstrip(b"\0") == b"ladle-sup web"
    assert _comm(run.supervisor_pid).startswith("ladle-sup")
    assert _comm(run.main_pid) == "sleep"  # exec'd already when start returned
    assert pots.host.alive(run)
    assert pots.row()["started"]
    # pid 1 is in a new pid namespace and the main process is its child
    assert os.readlink(f"/proc/{run.init_pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    status = Path(f"/proc/{run.main_pid}/status").read_text()
    assert f"NSpid:\t{run.main_pid}\t2" in status
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
    assert lines[1] == "ladle-init web"
    assert lines[2] == "pid=2"  # the main process; pid 1 is the mini-init
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


def test_docker_default_capabilities_documented() -> None:
    assert caps.mask(False) == 0xA80425FB  # Docker's default set
    assert caps.mask(True) == 0xA80425FB | (1 << 14)
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
    assert pots.host.exec(spec, run, ["httpd", "-p", f"127.0.0.1:{port}", "-h", "/www"], tty=False,
                          env={}) == 0
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


def test_killed_supervisor_then_stop_recovers(pots: Pots) -> None:
    spec = pots.spec("sleep 1000")
    run = pots.start(spec)
    os.kill(run.supervisor_pid or 0, signal.SIGKILL)
    wait_pid(run.supervisor_pid, run.supervisor_start)
    assert pots.host.alive(run)  # the pot outlives its supervisor ...
    pots.stop(spec)  # ... and stop finishes it
    assert not pots.host.alive(run)
    assert not proc.alive(run.main_pid, None)
    assert pots.run().state == "stopped"


def test_everything_killed_leaves_no_mount(pots: Pots) -> None:
    spec = pots.spec("sleep 1000", mounts=[Mount("tmpfs", "tmpfs", "/scratch", ())])
    run = pots.start(spec)
    for pid in (run.supervisor_pid, run.init_pid):
        os.kill(pid or 0, signal.SIGKILL)
    wait_pid(run.init_pid, run.init_start)
    wait_pid(run.supervisor_pid, run.supervisor_start)
    pots.stop(spec)  # the fixture checks that no mount and no process is left


# Persistent pots and exec ---------------------------------------------------------------------

def test_persistent_pot_outlives_its_command_and_exec_works(pots: Pots) -> None:
    spec = pots.spec("true", persistent="YES")
    run = pots.start(spec)
    wait_pid(run.main_pid, None)  # the command is done ...
    assert pots.host.alive(run)  # ... the pot is not
    assert pots.run().state == "running"
    assert pots.host.exec(spec, run, ["sh", "-c", "hostname; exit 5"], tty=False, env={}) == 5
    pots.stop(spec)
    assert pots.run().state == "stopped" and pots.run().exit_code == 0


def test_exec_runs_inside_with_the_pots_limits(pots: Pots, capfd: pytest.CaptureFixture[str]) -> None:
    spec = pots.spec("sleep 1000")
    run = pots.start(spec)
    code = pots.host.exec(spec, run, ["sh", "-c", "hostname; echo $FOO; cat /proc/1/comm;"
                                      " grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; pwd; exit 3"],
                          tty=False, env={"FOO": "given"})
    assert code == 3
    out = capfd.readouterr().out.splitlines()
    assert out == ["web.pots.test", "given", "ladle-init web", f"CapEff:\t{caps.mask(False):016x}",
                   "NoNewPrivs:\t1", "/"]
    with pytest.raises(HostError, match="cannot run 'nosuch': No such file or directory"):
        pots.host.exec(spec, run, ["nosuch"], tty=False, env={})
    assert pots.host.exec(spec, run, ["sh", "-c", "kill -9 $$"], tty=False, env={}) == 137


def test_exec_with_a_terminal(pots: Pots, capfd: pytest.CaptureFixture[str]) -> None:
    spec = pots.spec("sleep 1000")
    run = pots.start(spec)
    assert pots.host.exec(spec, run, ["sh", "-c", "tty; exit 4"], tty=True, env={}) == 4
    assert capfd.readouterr().out.strip() == "/dev/pts/0"  # the pot's own devpts


def test_exec_on_a_stopped_pot_is_refused(pots: Pots) -> None:
    spec = pots.spec("true")
    pots.start(spec)
    run = pots.wait_exit()
    with pytest.raises(StateError, match="not running"):
        pots.host.exec(spec, run, ["true"], tty=False, env={})


def test_exec_render_is_nsenter(pots: Pots) -> None:
    spec = pots.spec("sleep 1")
    spec.extra["init_pid"] = 4242
    line = pots.host.exec_render(spec, ["ls", "-l"], tty=False)[0]
    assert line.startswith("nsenter --target 4242 --mount --uts --ipc --net --pid ")
    assert line.endswith(" ls -l")


# Start failures ------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["nosuch", "nosuch --opt 'quoted; arg'"])
def test_start_reports_why_the_command_cannot_run(pots: Pots, cmd: str) -> None:
    with pytest.raises(HostError, match=r"^pot web: cannot run 'nosuch': No such file or directory$"):
        pots.start(pots.spec(cmd))
    row = pots.row()
    assert row["state"] == "failed" and "cannot run 'nosuch'" in str(row["error"])


def test_start_reports_a_bad_mount(pots: Pots, tmp_path: Path) -> None:
    spec = pots.spec("true", mounts=[Mount("bind", str(tmp_path / "missing"), "/data", ())])
    with pytest.raises(HostError, match=r"pot web: cannot mount bind .*missing on /data: No such file"):
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
        assert pots.host.exec(spec, pots.run(), ["cat", "/in-rel.txt"], tty=False, env={}) == 0


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
    assert lines[0].startswith("# illustrative")
    assert any(line.startswith("mount -t overlay") for line in lines)
    assert lines[-1].startswith("cp -a --no-dereference /etc/hosts ")


# Foreground --------------------------------------------------------------------------------------

def test_run_foreground_returns_the_exit_code_and_tees_the_log(pots: Pots,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    spec = pots.spec("sh -c 'echo out; echo err >&2; exit 3'")
    assert pots.host.run_foreground(spec, log=True) == 3
    got = capfd.readouterr()
    assert got.out == "out\n" and got.err == "err\n"
    assert sorted(pots.log().splitlines()) == ["err", "out"]
    row = pots.row()
    assert row["state"] == "exited" and row["exit_code"] == 3
    assert pots.host.run_foreground(spec, log=False) == 3
    assert capfd.readouterr().out == "out\n"


def test_run_foreground_reports_exec_failure(pots: Pots) -> None:
    with pytest.raises(HostError, match="cannot run 'nosuch'"):
        pots.host.run_foreground(pots.spec("nosuch"), log=False)


# Plans, attributes, bases --------------------------------------------------------------------

def test_start_and_stop_plans_render_and_round_trip(pots: Pots) -> None:
    spec = pots.spec("nginx -g 'daemon off;'", mounts=[Mount("bind", "/srv", "/srv", ("ro",))])
    steps = pots.host.start_plan(spec)
    assert len(steps) == 1 and isinstance(steps[0], LinuxStart)
    text = "\n".join(steps[0].render())
    assert text.startswith("# illustrative")
    for want in ("unshare --mount --uts --ipc --net --pid --fork", "mount -t overlay overlay",
                 "mount --rbind /srv", "remount,bind,ro", "pivot_root", "hostname web.pots.test",
                 "cap_net_bind_service", "exec nginx -g", "daemon off;", "mount -t proc proc -o"):
        assert want in text, want
    again = Step.from_json(steps[0].to_json())
    assert again == steps[0]
    assert spec_from_json(spec_to_json(spec)) == spec
    inverse = steps[0].inverse()
    assert type(inverse[0]).__name__ == "LinuxStop"
    stop = pots.host.stop_plan(spec, RunRecord("web", "running", init_pid=1234))[0].render()
    assert stop == ["kill -TERM 1234", "# wait up to 10s for it to exit (pidfd), then:", "kill -KILL 1234"]


def test_attributes() -> None:
    host = LinuxHost(SubprocessRunner(), "/nonexistent")
    assert host.attr_defaults() == {"persistent": "YES", "procfs": "YES", "fdescfs": "YES", "mlock": "NO",
                                    "sysvipc": "new", "stop_timeout": "10", "exec_stop": ""}
    for value, want in (("yes", "YES"), ("On", "YES"), ("TRUE", "YES"), ("off", "NO"),
                        ("False", "NO"), ("no", "NO")):
        assert host.check_attr("persistent", value) == want
    assert host.check_attr("stop_timeout", "30") == "30"
    assert host.check_attr("sysvipc", "Inherit") == "inherit"
    assert host.check_attr("exec_stop", "nginx -s quit") == "nginx -s quit"
    for name, value, msg in (("stop_timeout", "-1", "number"), ("stop_timeout", "soon", "number"),
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


_CTRL_C = """
import json, sys
from ladle.hosts.linux import LinuxHost
from ladle.hosts.linux.steps import spec_from_json
from ladle.plan.runner import SubprocessRunner
spec = spec_from_json(json.loads(sys.argv[1]))
code = LinuxHost(SubprocessRunner(), sys.argv[2]).run_foreground(spec, log=False)
print(f"exit={code}", flush=True)
"""


def _pgrp_and_tty_group(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[5])


def test_ctrl_c_reaches_the_main_process_once(pots: Pots, tmp_path: Path) -> None:
    """`ladle run` under a terminal: the main process owns the terminal (it can read it) and a
    Ctrl-C reaches it once, not also through the supervisor and pid 1."""
    import pty
    import sys

    spec = pots.spec("sh -c 'trap \"echo got-INT\" INT; echo ready; read line; echo read-$line;"
                     " echo armed; read x; exit 5'")
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execv(sys.executable, [sys.executable, "-c", _CTRL_C, json.dumps(spec_to_json(spec)),
                                      str(tmp_path)])
        finally:
            os._exit(99)
    seen = b""

    def until(text: bytes) -> None:
        nonlocal seen
        while text not in seen:
            ready, _, _ = select.select([master], [], [], 10)
            assert ready, f"timed out waiting for {text!r}; got {seen!r}"
            try:
                data = os.read(master, 4096)
            except OSError:
                data = b""
            assert data, f"EOF while waiting for {text!r}; got {seen!r}"
            seen += data

    try:
        until(b"ready")
        init_pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        main_pid = int(Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()[0])
        # the main process leads the terminal's foreground group; the supervisor and pid 1 are not
        # in it, so the terminal's SIGINT is not also forwarded to the main process by them
        assert _pgrp_and_tty_group(main_pid) == (main_pid, main_pid)
        assert _pgrp_and_tty_group(pid)[0] != main_pid
        assert _pgrp_and_tty_group(init_pid)[0] != main_pid
        os.write(master, b"typed\n")  # the main process can read its terminal ...
        until(b"read-typed")
        until(b"armed")
        os.write(master, b"\x03")  # ... and a Ctrl-C reaches it once
        until(b"got-INT")
        os.write(master, b"\n")  # whether or not the trap ended the read
        until(b"exit=")
        until(b"\n")
    finally:
        os.close(master)
        os.waitpid(pid, 0)
    text = seen.decode().replace("\r", "")
    assert text.count("got-INT") == 1, text
    assert "exit=5" in text, text


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
