"""`ladle create -f FLAVOUR` (pot's flavours) on real busybox pots: a file of the pot's own
configuration verbs and a script run inside it, found in `flavours_dir` or at a path, applied in
order; a flavour that asks for anything else is refused before the pot exists, and one that fails
destroys the pot it was applied to, leaving no row, storage or run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Ladle


@pytest.fixture
def bb(ladle: Ladle) -> Ladle:
    ladle("create-base", "-r", "busybox")
    return ladle


@pytest.fixture
def flavours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A flavours directory, named in a config file (with the test's state root in it too)."""
    d = tmp_path / "flavours"
    d.mkdir()
    conf = tmp_path / "ladle.toml"
    conf.write_text(f'flavours_dir = "{d}"\n')
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    return d


def info(cli: Ladle, pot: str) -> dict[str, object]:
    return json.loads(cli("info", "-p", pot, "--json").stdout)  # type: ignore[no-any-return]


def nothing_of(cli: Ladle, pot: str) -> None:
    """No trace of `pot`: not listed, no storage, no run directory, no operation left."""
    assert pot not in cli("ls", "-q").stdout.split()
    assert not (cli.root / "storage" / "pots" / pot).exists()
    assert not (cli.root / "run" / pot).exists()
    assert cli("gc").stdout.strip() == "nothing to clean up"


def test_commands_then_script_from_the_flavours_dir(bb: Ladle, flavours: Path) -> None:
    (flavours / "files").mkdir()
    (flavours / "files" / "motd").write_text("from the flavour\n")
    (flavours / "web").write_text("# configure a web pot\n\n"
                                  "set-attribute -A persistent -V YES\n"
                                  "set-env -E A=1\n"
                                  'set-env -E B="two words"\n'
                                  "set-cmd -c sleep 1000\n"
                                  "copy-in-flv -s files/motd -d /etc/motd\n")
    (flavours / "web.sh").write_text('#!/bin/sh\nset -e\necho "flavoured $1 $(cat /etc/motd)" > /etc/flavoured\n'
                                     "echo running the script\n")
    out = bb("create", "-p", "w", "-b", "busybox", "-f", "web")
    assert out.stdout.splitlines()[-1] == "created pot w with flavour web"
    assert "running the script" in out.stdout
    pot = info(bb, "w")
    assert pot["cmd"] == "sleep 1000" and pot["env"] == {"A": "1", "B": "two words"}
    assert pot["status"] == "stopped" and pot["persistent"] is True
    bb("start", "w")
    assert bb("exec", "w", "--", "cat", "/etc/flavoured").stdout == "flavoured w from the flavour\n"
    bb("stop", "w")


def test_a_script_restores_persistent_and_flavours_apply_in_order(bb: Ladle, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("set-cmd -c sleep 2000\nset-env -E X=one\n")
    (tmp_path / "one.sh").write_text("echo one >> /order\n")
    (tmp_path / "two.sh").write_text("echo two >> /order\n")
    two.write_text("set-env -E Y=two\nset-attr -A persistent -V NO\n")
    bb("create", "-p", "o", "-b", "busybox", "-f", str(one), "-f", str(two))
    pot = info(bb, "o")
    assert pot["env"] == {"X": "one", "Y": "two"} and pot["persistent"] is False
    assert (bb.root / "storage/pots/o/fs/order").read_text() == "one\ntwo\n"
    bb("create", "-p", "s", "-b", "busybox", "-c", "sleep 1000", "-f", str(tmp_path / "two.sh"))
    assert info(bb, "s")["persistent"] is True  # the default
    assert (bb.root / "storage/pots/s/fs/order").read_text() == "two\n"


@pytest.mark.parametrize("line, says", [
    ("destroy -p other", "'destroy' is not allowed in a flavour"),
    ("start", "'start' is not allowed in a flavour"),
    ("set-attr -p other -A persistent -V NO", "-p: a flavour's commands are for its own pot only"),
    ("set-attr -A persistent", "set-attr needs -V"),
    ("copy-in -c", "copy-in needs -s and -d"),
    ("copy-in-flv -s ../../etc/shadow -d /x", "copy-in-flv takes a path inside the flavour's directory"),
    ("set-env -E NOEQUALS", "-E takes KEY=VALUE"),
    ("set-cmd sleep 1", "set-cmd takes '-c COMMAND'"),
    ("export-ports -x 80", "export-ports has no option '-x'"),
])
def test_other_verbs_are_refused_before_anything_is_made(bb: Ladle, tmp_path: Path, line: str, says: str) -> None:
    flavour = tmp_path / "bad"
    flavour.write_text(f"set-env -E OK=1\n{line}\n")
    said = bb.fails("create", "-p", "b", "-b", "busybox", "-f", str(flavour))
    assert said == f"ladle: flavour bad line 2: {says}" or said.startswith(f"ladle: flavour bad line 2: {says}"), said
    nothing_of(bb, "b")


def test_a_failing_line_destroys_the_pot(bb: Ladle, tmp_path: Path) -> None:
    flavour = tmp_path / "copy"
    flavour.write_text(f"set-env -E A=1\ncopy-in -s {tmp_path}/absent -d /x\n")
    said = bb.fails("create", "-p", "c", "-b", "busybox", "-f", str(flavour))
    assert said.startswith(f"ladle: flavour copy line 2 (copy-in -s {tmp_path}/absent -d /x) (pot c destroyed): "), \
        said
    nothing_of(bb, "c")


def test_a_failing_script_destroys_the_pot_and_stops_it_first(bb: Ladle, tmp_path: Path) -> None:
    (tmp_path / "boom.sh").write_text("echo partial > /partial\nexit 3\n")
    said = bb.fails("create", "-p", "d", "-b", "busybox", "-c", "sleep 1000", "-f", str(tmp_path / "boom.sh"))
    assert said == "ladle: flavour boom script (pot d destroyed): boom.sh exited 3", said
    nothing_of(bb, "d")


def test_a_script_needs_a_pot_whose_command_starts(bb: Ladle, tmp_path: Path) -> None:
    """The pot starts with its own command, as pot's does: busybox has no /etc/rc."""
    (tmp_path / "s.sh").write_text("true\n")
    proc = bb("create", "-p", "r", "-b", "busybox", "-f", str(tmp_path / "s.sh"), check=False)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first == "ladle: flavour s script (pot r destroyed): pot r did not start: its command exited with code " \
        "2; the end of its log:", proc.stderr
    assert "/etc/rc" in proc.stderr
    nothing_of(bb, "r")


def test_an_unknown_flavour_changes_nothing(bb: Ladle, flavours: Path) -> None:
    said = bb.fails("create", "-p", "u", "-b", "busybox", "-f", "nosuch")
    assert said.startswith(f"ladle: no flavour 'nosuch' in '{str(flavours)[:40]}")
    assert said.endswith("(neither the file of commands nor its .sh script)")
    nothing_of(bb, "u")


def test_a_dry_run_shows_the_flavours_commands(bb: Ladle, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("set-env -E A=1\n")
    (tmp_path / "f.sh").write_text("true\n")
    out = bb("--dry-run", "create", "-p", "y", "-b", "busybox", "-f", str(tmp_path / "f")).stdout
    assert "ladle set-env -E A=1 -p y" in out
    assert f"ladle exec y -- {tmp_path}/f.sh y" in out
    nothing_of(bb, "y")
