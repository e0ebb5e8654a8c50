"""`ladle ps` reads the pot's /etc/passwd on the host: a pot that makes it a link to a host file
(absolute, or climbing with ..) or a FIFO gets uids, never the host file's names, and no hang."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.conftest import Ladle


@pytest.mark.parametrize("how", ["absolute", "climbing", "fifo"])
def test_a_pots_passwd_never_names_from_a_host_file(ladle: Ladle, tmp_path: Path, how: str) -> None:
    host_file = tmp_path / "passwd"
    host_file.write_text("hostonly:x:0:0::/:/bin/sh\n")
    target = {"absolute": str(host_file), "climbing": "../../../../../../../.." + str(host_file)}.get(how)
    swap = f"ln -s {shlex.quote(target)} /etc/passwd" if target else "mkfifo /etc/passwd"
    ladle("create-base", "-r", "busybox")
    ladle("create", "-p", "liar", "-b", "busybox", "-c", "sleep 1000")
    ladle("start", "liar")
    ladle("exec", "liar", "--", "sh", "-c", f"rm /etc/passwd && {swap}")
    out = ladle("ps", "--json", "liar", timeout=10).stdout
    assert "hostonly" not in out
    assert {p["user"] for p in json.loads(out)} == {"0"}
    ladle("stop", "liar")
