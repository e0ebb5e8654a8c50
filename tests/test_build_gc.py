"""A `ladle build` killed (SIGKILL) in the middle of a step: what it left (the step's pot, running
still during a RUN, its staged files, its half-done plans) is taken by `ladle gc` or by the next
build; a build that is still running is left alone; the cache rows of the steps it finished stay,
until `image prune --build-cache`."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import LADLE, Ladle
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_images_run import layer_keys, pushed  # noqa: F401  (a fixture)

STEPS = "FROM {base}\nUSER root\nCOPY f /f\n"


def context(tmp_path: Path, text: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "f").write_text("from the context\n")
    (ctx / "Containerfile").write_text(text)
    return ctx


def started(ladle: Ladle, ctx: Path, tag: str, until: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A build in the background, read until its output has the line `until`."""
    proc = subprocess.Popen([*LADLE, "--root", str(ladle.root), "build", "-t", tag, str(ctx)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "LADLE_LOCK_TIMEOUT": "30", **(env or {})})
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.strip() == until:
            return proc
    proc.wait()
    raise AssertionError(f"the build ended ({proc.returncode}) before {until!r}:\n{''.join(seen)}")


def builds(ladle: Ladle) -> list[str]:
    top = ladle.root / "builds"
    return sorted(os.listdir(top)) if top.is_dir() else []


def sleeping(ladle: Ladle) -> list[str]:
    """The `sleep` processes of pots (in their own pid namespace) of this root's monitor."""
    out = subprocess.run(["pgrep", "-f", "-x", "sleep 60"], capture_output=True, text=True).stdout.split()
    mine = os.readlink("/proc/self/ns/pid")
    return [p for p in out if os.path.exists(f"/proc/{p}") and os.readlink(f"/proc/{p}/ns/pid") != mine]


def test_a_build_killed_in_run_is_cleaned_up_by_gc_and_its_finished_steps_stay_cached(
        ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    ctx = context(tmp_path, STEPS.format(base=pushed["gzip"]) + "RUN echo started; sleep 60\n")
    ladle("run", "--rm", pushed["gzip"], "true")  # the base's layers, as any run of it makes them
    before = set(layer_keys(ladle))
    proc = started(ladle, ctx, "localhost/killed:1", "started")
    assert ladle("ls", "-q").stdout.startswith("build-") and sleeping(ladle)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = ladle("gc").stdout
    assert "cleaned up after killed build" in report and "destroyed its pot build-" in report, report
    assert ladle("ls", "-q").stdout == ""
    assert not sleeping(ladle)  # the RUN's command was stopped with its pot
    assert builds(ladle) == [] and not list((ladle.root / "storage" / "pots").iterdir())
    assert not list((ladle.root / "run").glob("build-*")) and not list((ladle.root / "logs").glob("build-*"))
    assert "killed" not in ladle("images").stdout  # no name for a build that did not end
    assert ladle("gc").stdout == "nothing to clean up\n"
    # the steps that had ended are cache: a build of the same start finds them
    again = context(tmp_path, STEPS.format(base=pushed["gzip"]) + "RUN cat /f > /g\n", "again")
    out = ladle("build", "-t", "localhost/again:1", str(again), timeout=180).stdout
    assert out.count("--> CACHED") == 2, out  # USER and COPY
    assert ladle("run", "--rm", "localhost/again:1", "cat /g").stdout == "from the context\n"
    # and --build-cache forgets them: what only the cache used goes, the built image stays whole
    pruned = ladle("image", "prune", "--build-cache").stdout
    assert "forgot 3 build steps" in pruned, pruned
    assert set(layer_keys(ladle)) - before  # the built image's own layers
    assert ladle("run", "--rm", "localhost/again:1", "cat /g").stdout == "from the context\n"
    assert "CACHED" not in ladle("build", "-t", "localhost/again:2", str(again), timeout=180).stdout


def test_a_build_killed_in_copy_is_cleaned_up_by_the_next_build(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                 tmp_path: Path) -> None:
    ctx = context(tmp_path, STEPS.format(base=pushed["gzip"]))
    # killed by the executor after the first step of copy-in's plan: the pot made, the files staged
    proc = started(ladle, ctx, "localhost/copy:1", "STEP 3/3: COPY f /f", {"LADLE_FAULT": "copy-in:0"})
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert len(builds(ladle)) == 1 and list((ladle.root / "builds" / builds(ladle)[0]).iterdir())  # staged
    assert ladle("ls", "-q").stdout.startswith("build-")
    out = ladle("build", "-t", "localhost/copy:1", str(ctx), timeout=180).stdout
    assert "cleaned up after killed build" in out and "destroyed its pot build-" in out, out
    assert ladle("ls", "-q").stdout == "" and builds(ladle) == []
    assert ladle("run", "--rm", "localhost/copy:1", "cat /f").stdout == "from the context\n"
    assert ladle("gc").stdout == "nothing to clean up\n"


def test_gc_and_prune_leave_a_running_build_alone(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, STEPS.format(base=pushed["gzip"]) + "RUN echo started; sleep 5; echo done > /done\n")
    proc = started(ladle, ctx, "localhost/live:1", "started")
    try:
        live = builds(ladle)
        pot = ladle("ls", "-q").stdout
        assert ladle("gc").stdout == "nothing to clean up\n"
        assert "kept the build cache: a build is running" in ladle("image", "prune", "--build-cache").stdout
        assert builds(ladle) == live and ladle("ls", "-q").stdout == pot
    finally:
        assert proc.wait(timeout=120) == 0
    assert ladle("run", "--rm", "localhost/live:1", "cat /done").stdout == "done\n"
    assert builds(ladle) == [] and ladle("ls", "-q").stdout == ""
    assert not list((ladle.root / "locks").glob("build-*"))
