"""Pots run attached: Docker's `run` (create a non-persistent pot, run its command, optionally
destroy it) and pot's start of a non-persistent pot (its command in the foreground)."""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Callable

from ladle._results import RunResult
from ladle.engine import hooks, imagepots, lifecycle, potnet, pots
from ladle.engine.core import Engine
from ladle.errors import UsageError
from ladle.platform import write_all
from ladle.supervise import attach


def _name(name: str | None) -> str:
    return name or f"run-{os.urandom(5).hex()}"


def _create(eng: Engine, base: str, argv: list[str], name: str, net: potnet.Request | str,
            ports: list[str] | None, entrypoint: str | None, insecure: bool, publish_all: bool) -> None:
    """The non-persistent pot of a run: on a local base with `argv` (a /bin/sh command line, as
    pot's), or else from the image `base` names (pulled when missing, as Docker's run does),
    `argv` replacing its Cmd."""
    attrs = {"persistent": "NO"}
    if imagepots.is_image(eng, base):
        imagepots.create(eng, name, base, argv, entrypoint, net, attrs, ports, pull=True, insecure=insecure,
                         publish_all=publish_all)
        return
    if entrypoint is not None:
        raise UsageError(f"--entrypoint is for images: {base} is a local base")
    if publish_all:
        raise UsageError(f"--publish-all is for images (their ExposedPorts): {base} is a local base")
    if not argv:
        raise UsageError("no command given: ladle run BASE -- COMMAND [ARG...]")
    pots.create(eng, name, base, "multi", 1, None, shlex.join(argv), net, attrs, ports)


def run(eng: Engine, base: str, argv: list[str], name: str | None, remove: bool, net: potnet.Request | str,
        stdio: tuple[int, int, int] | None, ports: list[str] | None = None, entrypoint: str | None = None,
        insecure: bool = False, publish_all: bool = False) -> RunResult:
    """Run `argv` in a new pot on `base` (a local base, else an image) and wait for it; the pot
    is destroyed after with `remove`.

    The command's stdout and stderr reach `stdio[1]` and `stdio[2]` (the monitor passes them on
    through two pipes, and keeps them in the pot's log); with `stdio` None they are captured in
    the result. Its stdin is /dev/null, as Docker's without -i. Signals this process gets are
    passed on to the command.
    """
    name = _name(name)
    _create(eng, base, argv, name, net, ports, entrypoint, insecure, publish_all)
    if eng.dry_run:  # the pot is not made, so its start cannot be planned in detail
        eng.lines.append(f"# then start pot {name}, wait for its command"
                         + (", then destroy the pot" if remove else ", then stop the pot"))
        return RunResult(name, 0, None, tuple(eng.lines))
    return _attached(eng, name, stdio, remove)


def start_attached(eng: Engine, name: str, stdio: tuple[int, int, int] | None) -> RunResult:
    """pot's start of a non-persistent pot: run its command with its output through us, forward
    our signals to it, and stop the pot when it exits (DESIGN §5)."""
    if eng.dry_run:
        lifecycle.start(eng, name)
        eng.lines.append("# then wait for its command, then stop the pot")
        return RunResult(name, 0, None, tuple(eng.lines))
    lifecycle.start_deps(eng, name)
    return _attached(eng, name, stdio, remove=False)


def _attached(eng: Engine, name: str, stdio: tuple[int, int, int] | None, remove: bool) -> RunResult:
    """Start `name` attached and wait for its command; then destroy it (`remove`) or stop it, if
    this start got as far as running anything."""
    captured = bytearray()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    code: int | None = None
    started = False
    try:
        with eng.lock(f"pot-{name}"):
            pot = lifecycle.startable(eng, name)
            hooks.run(eng, name, "prestart")
            started = True
            eng.ctx.attach = (out_w, err_w)
            try:
                spec = lifecycle.spec(eng, pot)
                eng.execute("start", f"pot:{name}", eng.host.start_plan(spec))
                if "hosts" in spec.net:
                    lifecycle.write_hosts(eng, name, spec.net["hosts"])  # see engine/hostsfile
            finally:
                eng.ctx.attach = None
                os.close(out_w)
                os.close(err_w)
            hooks.run(eng, name, "poststart")
        outputs = {out_r: _sink(stdio[1] if stdio else None, captured),
                   err_r: _sink(stdio[2] if stdio else None, captured)}
        code = attach.wait(eng.monitor(), {"pot": name}, outputs)
    finally:
        os.close(out_r)
        os.close(err_r)
        if remove:
            pots.destroy(eng, name, recursive=False, force=True)
        elif started:
            with eng.lock(f"pot-{name}"):
                lifecycle.stop_locked(eng, name)
    return RunResult(name, 255 if code is None else code, None if stdio else bytes(captured))


def _sink(fd: int | None, captured: bytearray) -> Callable[[bytes], None]:
    if fd is None:
        return captured.extend
    return functools.partial(write_all, fd)


def run_detached(eng: Engine, base: str, argv: list[str], name: str | None, net: potnet.Request | str,
                 remove: bool = False, ports: list[str] | None = None, entrypoint: str | None = None,
                 insecure: bool = False, publish_all: bool = False) -> str:
    """`run -d`: create and start, return at once; the pot is torn down when its command exits,
    and destroyed then with `remove` (its monitor runs `ladle destroy -F` instead of `stop`)."""
    name = _name(name)
    _create(eng, base, argv, name, net, ports, entrypoint, insecure, publish_all)
    if eng.dry_run:
        eng.lines.append(f"# then start pot {name}" + (", destroyed when its command exits" if remove else ""))
        return name
    lifecycle.start(eng, name, remove=remove)
    return name


def stop(eng: Engine, name: str, exited: bool = False) -> str:
    """The stop verb (lifecycle.stop); a pot started by `run --rm -d` is destroyed after it, as
    Docker's stop of a `--rm` container removes it."""
    said, removed = lifecycle.stop_telling(eng, name, exited)
    if not removed:
        return said
    pots.destroy(eng, name, recursive=False, force=True)
    return f"stopped and destroyed pot {name} (it was started with run --rm)"
