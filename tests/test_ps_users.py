"""`ladle ps` names a process's user from the pot's own /etc/passwd (real pots): the pot's names,
not the host's; the uid for a uid it does not name or names with anything but a plain word."""

from __future__ import annotations

import json

import pytest

from ladle.engine.resources import user_names
from tests.conftest import Ladle

# the pot adds users, runs a sleep as each, then forgets `gone` (its process runs on)
SCRIPT = ("printf 'web:x:4242:4242::/:/bin/sh\\ngone:x:5000:5000::/:/bin/sh\\n' >> /etc/passwd;"
          " su -s /bin/sh web -c 'exec sleep 1001' & su -s /bin/sh gone -c 'exec sleep 1002' &"
          " sleep 0.3; sed -i /^gone:/d /etc/passwd; exec sleep 1000")


@pytest.fixture
def users(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "who", "-b", "busybox", "-c", SCRIPT)
    ladle("start", "who")
    return ladle


def _by_command(cli: Ladle) -> dict[str, dict]:  # type: ignore[type-arg]
    import time

    deadline = time.monotonic() + 10
    while True:
        got = {p["command"]: p for p in json.loads(cli("ps", "--json", "who").stdout)}
        if "sleep 1000" in got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_ps_shows_the_pots_own_user_names_and_uids_it_does_not_name(users: Ladle) -> None:
    got = _by_command(users)
    assert got["sleep 1001"]["user"] == "web" and got["sleep 1001"]["uid"] == 4242
    assert got["sleep 1002"]["user"] == "5000"  # its name is gone from the pot's passwd
    assert got["sleep 1000"]["user"] == got["catatonit -P"]["user"] == "root"
    lines = users("ps", "who").stdout.splitlines()
    assert lines[0].split() == ["PID", "HOST_PID", "USER", "COMMAND"]
    assert any(line.split()[2:] == ["web", "sleep", "1001"] for line in lines[1:])
    users("stop", "who")


def test_names_that_are_no_plain_word_are_not_shown() -> None:
    text = b"root:x:0:0::/:/bin/sh\nx\x1b[2J:x:7:7::/:\nalso:x:0:0::/:\nbad:x:-1:0::/:\nsvc$:x:9:9::/:\n\xff\n"
    assert user_names(text) == {0: "root", 9: "svc$"}
