"""Escape probes for healthchecks and hooks: a pot's healthcheck is the pot's own command, run in
it as an exec is (its namespaces, its root, the exec's capabilities, no_new_privs and seccomp
filter), so a check cannot see or touch the host; hooks are the operator's host scripts, named
by absolute host paths when set, so nothing in a pot's tree can stand in for one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Ladle, _teardown

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

STATUS = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Ladle]:
    ladle = Ladle(tmp_path / "root")
    ladle("init")
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "web", "-b", "busybox", "-c", "sleep 1000")
    yield ladle
    _teardown(ladle)


def _health(cli: Ladle) -> str | None:
    value = json.loads(cli("info", "-p", "web", "--json").stdout)["health"]
    return None if value is None else str(value)


def test_a_healthcheck_runs_confined_in_the_pot(cli: Ladle, tmp_path: Path) -> None:
    marker = tmp_path / "host-only"
    marker.write_text("the host's\n")
    check = (f"{STATUS} > /tmp/check.status; test \"$(hostname)\" = web && test ! -e {marker}"
             f" && mkdir -p {tmp_path} && echo written > {tmp_path}/from-the-check")
    cli("set-health", "-p", "web", "-c", check, "--interval", "0.2s")
    cli("start", "web")
    deadline = time.monotonic() + 20
    while _health(cli) != "healthy":
        assert time.monotonic() < deadline, f"the check never passed: {_health(cli)}"
        time.sleep(0.05)
    assert not (tmp_path / "from-the-check").exists()  # it wrote into the pot's /tmp..., not the host's
    seen = cli("exec", "web", "--", "cat", "/tmp/check.status").stdout
    assert seen == cli("exec", "web", "--", "sh", "-c", STATUS).stdout  # an exec's confinement
    assert "NoNewPrivs:\t1" in seen and "Seccomp:\t2" in seen
    cli("stop", "web")


def test_a_hook_is_the_host_path_it_was_set_to(cli: Ladle, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text(f"#!/bin/sh\necho host > {tmp_path}/ran\n")
    hook.chmod(0o755)
    cli("set-hook", "-p", "web", "-S", str(hook))
    cli("start", "web")
    # the pot plants its own script at the same path, in its tree
    cli("exec", "web", "--", "sh", "-c", f"mkdir -p {tmp_path} && printf '#!/bin/sh\\necho pot > {tmp_path}/ran\\n'"
        f" > {hook} && chmod 755 {hook}")
    cli("stop", "web")
    cli("start", "web")
    assert (tmp_path / "ran").read_text() == "host\n"
    assert hook.read_text().startswith("#!/bin/sh\necho host")
    cli("stop", "web")
