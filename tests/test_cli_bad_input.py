"""Bad input to every verb and every option: one line `ladle: ...` on stderr, exit 1 or 2, nothing
changed (the database's rows, the files under the state root and the test's host paths).

The table is checked against the parser (`test_the_table_covers_every_option`): an option of any
verb, or a verb, that has no row and no entry in NOT_APPLICABLE fails. A flag (`store_true`) gets
its row from the parser: the one bad input a flag can get is a value (`--json=1`, `-q1`).

Usage errors are argparse's too, made one line by `cli.common.Parser.error` (`ladle: VERB:
argument -l: invalid choice: ...`); `--help` still prints the usage and exits 0.

The world is one state root per module with a base, an fscomp with a snapshot, a pot p1 with a
snapshot that pot p2 (level 2) is built on, fs1 mounted in p1 (which has run once), and a running
pot `up`: so unknown, existing and in-use names can all be tried.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LADLE, Ladle


@dataclass(frozen=True)
class Row:
    covers: str  # "VERB OPTION", "VERB DEST" for a positional, "VERB" for the verb, "OPTION" for a global one
    says: str  # a piece of the one line it must print
    argv: tuple[str, ...]  # {name} stands for a path of the world (see World.paths)
    bug: str = ""  # a known bug: the row is expected to fail (strictly)


def r(covers: str, says: str, *argv: str, bug: str = "") -> Row:
    return Row(covers, says, argv, bug)


LONG = "x" * 64  # one over the 63 characters of a name
HUGE = "99999999999999999999999"
BAD_POT = "invalid pot name '../x'"
NO_POT = "pot nosuch does not exist"
FREEBSD = ("--host", "freebsd", "--dry-run")

NEW = ("create", "-p", "new", "-b", "busybox")
PUB = (*NEW, "-N", "public-bridge")
RUN = ("run", "-p", "new", "-N", "public-bridge")

# Containerfiles for build's rows: each wrong before anything is made
CONTAINERFILES = {"cf_unknown": "FROM scratch\nFROB x\n", "cf_escape": "FROM scratch\nCOPY ../file /x\n",
                  "cf_scratch": "# nothing but a base\nFROM scratch\n", "cf_nofrom": "RUN true\n",
                  "cf_dup": "FROM localhost/x AS a\nFROM localhost/x AS A\n", "cf_quote": "FROM scratch\nENV A=\"b\n"}
BUILD = ("build", "-t", "localhost/x:1")

ROWS: list[Row] = [
    # global options and the verb
    r("--root", "--root must not be empty", "--root", "", "ls"),
    r("--root", "--root must not be /", "--root", "/", "ls"),
    r("--root", "--root is too long", "--root", "/tmp/" + "x" * 200, "ls"),
    r("--root", "is not initialised in", "--root", "{missing}", "ls"),
    r("--root", "is not initialised in", "--root", "{file}", "ls"),
    r("--root", "is not initialised in '", "--root", "{newline}", "ls"),
    r("--root", "not a directory", "--root", "{file}", "init"),
    r("--root", "--root goes before the verb: ladle --root DIR VERB", "ls", "--root", "{dir}"),
    r("--root", "--root goes before the verb", "set-cmd", "-p", "p1", "--root={dir}", "-c", "true"),
    r("--host", "argument --host: invalid choice: 'plan9'", "--host", "plan9", "ls"),
    r("--host", "--host freebsd needs --dry-run", "--host", "freebsd", "ls"),
    r("verb", "unknown verb 'nosuch'", "nosuch"),
    r("verb", "unknown verb '../x'", "../x"),
    r("verb", "no verb given", "--dry-run"),
    # init
    r("init --storage", "argument --storage: invalid choice: 'btrfs'", "init", "--storage", "btrfs"),
    r("init --storage", "--storage zfs needs --dataset", "init", "--storage", "zfs"),
    r("init --dataset", "--dataset must not be empty", "init", "--dataset", ""),
    r("init --dataset", "invalid dataset '../x'", "init", "--storage", "zfs", "--dataset", "../x"),
    r("init --dataset", "invalid dataset 'pool'", "init", "--storage", "zfs", "--dataset", "pool"),
    r("init --dataset", "--dataset is only for --storage zfs", "init", "--dataset", "pool/x"),
    r("init --storage", "already initialised with dir storage", "init", "--storage", "zfs", "--dataset", "pool/x"),
    # create-base
    r("create-base -r", "release must not be empty", "create-base", "-r", ""),
    r("create-base -r", "on linux, -r takes 'busybox'", "create-base", "-r", "14.2", "-b", "fb"),
    r("create-base -r", "must not contain spaces or control characters", "create-base", "-r", "a b", "-b", "x"),
    r("create-base -r", "release 'xxxxxxxx", "create-base", "-r", LONG, "-b", "x"),
    r("create-base -r", "invalid FreeBSD release '14.2x'", *FREEBSD, "create-base", "-r", "14.2x"),
    r("create-base -r", "invalid FreeBSD release '../x'", *FREEBSD, "create-base", "-r", "../x", "-b", "fb"),
    r("create-base -r", "the following arguments are required: -r", "create-base", "-b", "x"),
    r("create-base -b", "invalid base name '../x'", "create-base", "-r", "busybox", "-b", "../x"),
    r("create-base -b", "base name must not be empty", "create-base", "-r", "busybox", "-b", ""),
    r("create-base -b", "is too long", "create-base", "-r", "busybox", "-b", LONG),
    r("create-base -b", "base busybox already exists", "create-base", "-r", "busybox"),
    r("create-base --from-tar", "tarball must not be empty", "create-base", "-r", "x", "-b", "t", "--from-tar", ""),
    r("create-base --from-tar", "does not exist", "create-base", "-r", "x", "-b", "t", "--from-tar", "{missing}"),
    r("create-base --from-tar", "is not a file", "create-base", "-r", "x", "-b", "t", "--from-tar", "{dir}"),
    r("create-base --from-tar", "does not exist", "create-base", "-r", "x", "-b", "t", "--from-tar", "{newline}"),
    r("create-base --from-tar", "is not a file", "create-base", "-r", "x", "-b", "t", "--from-tar", "{fifo}"),
    r("create-base --from-tar", "is too long", "create-base", "-r", "x", "-b", "t", "--from-tar", "{long}"),
    r("create-base --from-tar", "empty", "create-base", "-r", "x", "-b", "t", "--from-tar", "{empty}"),
    r("create-base --from-tar", "empty", "create-base", "-r", "x", "-b", "t", "--from-tar", "{empty_newline}"),
    r("create-base --from-tar", "not a tar", "create-base", "-r", "x", "-b", "t", "--from-tar", "{random}"),
    r("create-base --from-tar", "truncated", "create-base", "-r", "x", "-b", "t", "--from-tar", "{truncated}"),
    r("create-base --from-tar", "base busybox already exists", "create-base", "-r", "x", "-b", "busybox",
      "--from-tar", "{truncated}"),
    # bases, ls, list, fscomps, gc: nothing but flags
    r("bases", "unrecognized arguments: x", "bases", "x"),
    r("ls", "unrecognized arguments: x", "ls", "x"),
    r("list", "unrecognized arguments: -x", "list", "-x"),
    r("fscomps", "unrecognized arguments: x", "fscomps", "x"),
    r("gc", "unrecognized arguments: x", "gc", "x"),
    # create
    r("create -p", BAD_POT, "create", "-p", "../x", "-b", "busybox"),
    r("create -p", "invalid pot name 'a/b'", "create", "-p", "a/b", "-b", "busybox"),
    r("create -p", "pot name must not be empty", "create", "-p", "", "-b", "busybox"),
    r("create -p", "pot name 'xxx", "create", "-p", LONG, "-b", "busybox"),
    r("create -p", "invalid pot name 'a.b'", "create", "-p", "a.b", "-b", "busybox"),
    r("create -p", "not all digits", "create", "-p", "1234", "-b", "busybox"),
    r("create -p", "invalid pot name 'caf\xe9'", "create", "-p", "caf\xe9", "-b", "busybox"),
    r("create -p", "invalid pot name 'a\\x1b[0m'", "create", "-p", "a\x1b[0m", "-b", "busybox"),
    r("create -p", "argument -p: expected one argument", "create", "-p", "-x", "-b", "busybox"),
    r("create -p", "pot p1 already exists", "create", "-p", "p1", "-b", "busybox"),
    r("create --image", "the image must not be empty", "create", "-p", "new", "--image", ""),
    r("create --image", "--image takes the place of -b, -t, -l and -P", "create", "-p", "new", "-b", "busybox",
      "--image", "127.0.0.1:1/x:1"),
    r("create --image", "invalid image reference 'a b'", "create", "-p", "new", "--image", "a b"),
    r("create --image", "cannot reach registry 127.0.0.1:1", "create", "-p", "new", "--image", "127.0.0.1:1/x:1"),
    r("create --image", "a pot from an image has no dry run", "--dry-run", "create", "-p", "new", "--image",
      "127.0.0.1:1/x:1"),
    r("create -p", "the following arguments are required: -p", "create", "-b", "busybox"),
    r("create -b", "base nosuch does not exist", "create", "-p", "new", "-b", "nosuch"),
    r("create -b", "invalid base name '../x'", "create", "-p", "new", "-b", "../x"),
    r("create -b", "a base is needed", "create", "-p", "new"),
    r("create -t", "argument -t: invalid choice: 'double'", "create", "-p", "new", "-b", "busybox", "-t", "double"),
    r("create -l", "argument -l: invalid choice: 7", "create", "-p", "new", "-b", "busybox", "-l", "7"),
    r("create -l", "argument -l: invalid choice: -1", "create", "-p", "new", "-b", "busybox", "-l", "-1"),
    r("create -l", "argument -l: invalid choice", "create", "-p", "new", "-b", "busybox", "-l", HUGE),
    r("create -l", "argument -l: invalid int value: 'one'", "create", "-p", "new", "-b", "busybox", "-l", "one"),
    r("create -l", "level", "create", "-p", "new", "-b", "busybox", "-t", "single", "-l", "1"),
    r("create -l", "-P", "create", "-p", "new", "-b", "busybox", "-l", "2"),
    r("create -P", NO_POT, "create", "-p", "new", "-b", "busybox", "-P", "nosuch"),
    r("create -P", BAD_POT, "create", "-p", "new", "-b", "busybox", "-P", "../x"),
    r("create -P", "pot up has no snapshot", "create", "-p", "new", "-b", "busybox", "-l", "2", "-P", "up"),
    r("create -P", "-P cannot be used with a level 0 pot", "create", "-p", "new", "-b", "busybox", "-l", "0",
      "-P", "p1"),
    r("create -c", "the command must not be empty", "create", "-p", "new", "-b", "busybox", "-c", ""),
    r("create -c", "the command must not be empty", "create", "-p", "new", "-b", "busybox", "-c", "  "),
    r("create -c", "the command is too long", "create", "-p", "new", "-b", "busybox", "-c", "x" * 70000),
    r("create -N", "argument -N: invalid choice: 'bridge'", "create", "-p", "new", "-b", "busybox", "-N", "bridge"),
    r("create -N", "-N alias needs -i [IF|]IP", *NEW, "-N", "alias"),
    r("create -N", "network full (10.192.0.4/30) has no free address left", *NEW, "-N", "private-bridge", "-B", "full"),
    r("create -i", "-i is for -N alias, public-bridge or private-bridge, not -N none", *NEW, "-i", "10.192.0.5"),
    r("create -i", "10.192.0.2 is already leased to pot web on network public", *PUB, "-i", "10.192.0.2"),
    r("create -i", "10.0.0.1 is outside network public (10.192.0.0/10)", *PUB, "-i", "10.0.0.1"),
    r("create -i", "10.192.0.1 is the gateway of network public", *PUB, "-i", "10.192.0.1"),
    r("create -i", "10.255.255.255 is the broadcast address of network public", *PUB, "-i", "10.255.255.255"),
    r("create -i", "10.192.0.9 is in private bridge br1's network 10.192.0.8/29", *PUB, "-i", "10.192.0.9"),
    r("create -i", "-i fd00::5 is an IPv6 address, but the pot's stack is ipv4 (-S)", *PUB, "-i", "fd00::5"),
    r("create -i", "-i 10.192.0.5 is an IPv4 address, but the pot's stack is ipv6", *PUB, "-S", "ipv6",
      "-i", "10.192.0.5"),
    r("create -i", "-i 'x': not an IP address", *PUB, "-i", "x"),
    r("create -i", "-i must not be empty", *PUB, "-i", ""),
    r("create -i", "-i 'a b' must not contain spaces", *PUB, "-i", "a b"),
    r("create -i", "one address per IP version", *PUB, "-i", "10.192.0.5", "-i", "10.192.0.6"),
    r("create -i", "-N alias needs -i [IF|]IP: auto is for the bridge types", *NEW, "-N", "alias", "-i", "auto"),
    r("create -i", "this host has no interface nosuch0", *NEW, "-N", "alias", "-i", "nosuch0|192.0.2.5"),
    r("create -i", "invalid interface name 'a/b'", *NEW, "-N", "alias", "-i", "a/b|192.0.2.5"),
    r("create -i", "-i 192.0.2.10 is already an alias of pot al", *NEW, "-N", "alias", "-i", "lo|192.0.2.10"),
    r("create -i", "-i 127.0.0.5: not an address a pot can have", *NEW, "-N", "alias", "-i", "lo|127.0.0.5"),
    r("create -i", "-i 192.0.2.5 is given twice", *NEW, "-N", "alias", "-i", "lo|192.0.2.5", "-i", "lo|192.0.2.5"),
    r("create -B", "-N private-bridge needs -B BRIDGE", *NEW, "-N", "private-bridge"),
    r("create -B", "private bridge nosuch does not exist", *NEW, "-N", "private-bridge", "-B", "nosuch"),
    r("create -B", "private bridge public does not exist", *NEW, "-N", "private-bridge", "-B", "public"),
    r("create -B", "-B br1 is for -N private-bridge only, not -N public-bridge", *PUB, "-B", "br1"),
    r("create -B", "invalid bridge name '../x'", *NEW, "-N", "private-bridge", "-B", "../x"),
    r("create -S", "argument -S: invalid choice: 'ipv5'", *PUB, "-S", "ipv5"),
    r("create -d", "DNS server 'x': not an IP address", *PUB, "-d", "x"),
    r("create -d", "DNS servers are for a pot with a network of its own (alias or a bridge), not one of -N none",
      *NEW, "-d", "192.0.2.53"),
    r("create -d", "the DNS server must not be empty", *PUB, "-d", ""),
    r("create -f", "no flavour 'nosuch' in '/etc/ladle/flavours'", *NEW, "-f", "nosuch"),
    r("create -f", "invalid flavour ''", *NEW, "-f", ""),
    r("create -f", "invalid flavour name '..'", *NEW, "-f", ".."),
    r("create -f", "(neither the file of commands nor its .sh script)", *NEW, "-f", "{missing}"),
    r("create -f", "nor its .sh script", *NEW, "-f", "{fifo}"),
    r("create -f", "flavour file line 1: 'a' is not allowed in a flavour", *NEW, "-f", "{file}"),
    r("create -f", "is not UTF-8 text", *NEW, "-f", "{random}"),
    r("create -f", "argument -f: expected one argument", *NEW, "-f"),
    # destroy
    r("destroy", "give exactly one of -p POT, -b BASE, -f FSCOMP or -B BRIDGE", "destroy"),
    r("destroy -p", NO_POT, "destroy", "-p", "nosuch"),
    r("destroy -p", BAD_POT, "destroy", "-p", "../x"),
    r("destroy -p", "pot up is running", "destroy", "-p", "up"),
    r("destroy -p", "pot p1 is used by p2", "destroy", "-p", "p1"),
    r("destroy -p", "give exactly one of", "destroy", "-p", "p1", "-b", "busybox"),
    r("destroy -b", "base nosuch does not exist", "destroy", "-b", "nosuch"),
    r("destroy -b", "invalid base name '../x'", "destroy", "-b", "../x"),
    r("destroy -b", "base busybox is used by pots", "destroy", "-b", "busybox"),
    r("destroy -f", "fscomp nosuch does not exist", "destroy", "-f", "nosuch"),
    r("destroy -f", "invalid fscomp name 'a/b'", "destroy", "-f", "a/b"),
    r("destroy -f", "fscomp fs1 is mounted in pots p1", "destroy", "-f", "fs1"),
    r("destroy -B", "private bridge nosuch does not exist", "destroy", "-B", "nosuch"),
    r("destroy -B", "invalid bridge name '../x'", "destroy", "-B", "../x"),
    r("destroy -B", "private bridge br1 is used by pots up", "destroy", "-B", "br1"),
    r("destroy -B", "public is the public bridge's network: it cannot be destroyed", "destroy", "-B", "public"),
    r("destroy -B", "give exactly one of", "destroy", "-B", "br1", "-p", "p1"),
    r("destroy -r", "give exactly one of", "destroy", "-r"),
    r("destroy -F", "give exactly one of", "destroy", "-F"),
    # info
    r("info", "no pot given", "info"),
    r("info positional", NO_POT, "info", "nosuch"),
    r("info positional", "two pot names given: a and b", "info", "a", "-p", "b"),
    r("info -p", BAD_POT, "info", "-p", "../x"),
    r("info -p", "pot name must not be empty", "info", "-p", ""),
    # clone
    r("clone -p", "pot p2 already exists", "clone", "-p", "p2", "-P", "p1"),
    r("clone -p", BAD_POT, "clone", "-p", "../x", "-P", "p1"),
    r("clone -P", NO_POT, "clone", "-p", "new", "-P", "nosuch"),
    r("clone -P", "pot up has no snapshot", "clone", "-p", "new", "-P", "up"),
    r("clone -s", "pot p1 has no snapshot nosuch", "clone", "-p", "new", "-P", "p1", "-s", "nosuch"),
    r("clone -s", "snapshot name must not be empty", "clone", "-p", "new", "-P", "p1", "-s", ""),
    r("clone -s", "invalid snapshot name 'a/b'", "clone", "-p", "new", "-P", "p1", "-s", "a/b"),
    r("clone -i", "-i is for -N alias, public-bridge or private-bridge, not -N none", "clone", "-p", "new", "-P", "p1",
      "-i", "10.192.0.5"),
    r("clone -i", "10.192.0.2 is already leased to pot web", "clone", "-p", "new", "-P", "web", "-i", "10.192.0.2"),
    r("clone -i", "-N alias needs -i [IF|]IP", "clone", "-p", "new", "-P", "al"),
    r("clone -i", "network full (10.192.0.4/30) has no free address left", "clone", "-p", "new", "-P", "onfull"),
    # rename
    r("rename -p", NO_POT, "rename", "-p", "nosuch", "-n", "new"),
    r("rename -p", "pot up is running", "rename", "-p", "up", "-n", "new"),
    r("rename -p", BAD_POT, "rename", "-p", "../x", "-n", "new"),
    r("rename -n", "pot p1 is already called p1", "rename", "-p", "p1", "-n", "p1"),
    r("rename -n", "pot p2 already exists", "rename", "-p", "p1", "-n", "p2"),
    r("rename -n", "pot name must not be empty", "rename", "-p", "p1", "-n", ""),
    # set-cmd, set-env
    r("set-cmd -p", NO_POT, "set-cmd", "-p", "nosuch", "-c", "true"),
    r("set-cmd -c", "the command must not be empty", "set-cmd", "-p", "p1", "-c", ""),
    r("set-cmd -c", "the command is too long", "set-cmd", "-p", "p1", "-c", "x" * 70000),
    r("set-env -p", NO_POT, "set-env", "-p", "nosuch", "-E", "A=1"),
    r("set-env -E", "invalid environment entry 'x'", "set-env", "-p", "p1", "-E", "x"),
    r("set-env -E", "invalid environment entry '=x'", "set-env", "-p", "p1", "-E", "=x"),
    r("set-env -E", "invalid environment entry '1A=x'", "set-env", "-p", "p1", "-E", "1A=x"),
    r("set-env -E", "invalid environment entry 'A B=x'", "set-env", "-p", "p1", "-E", "A B=x"),
    r("set-env -E", "the environment entry 'A' is too long", "set-env", "-p", "p1", "-E", "A=" + "x" * 70000),
    r("set-env -E", "the environment entry 'AAAA", "set-env", "-p", "p1", "-E", "A" * 70000 + "=1"),
    # set-attr, get-attr
    r("set-attr -p", NO_POT, "set-attr", "-p", "nosuch", "-A", "persistent", "-V", "YES"),
    r("set-attr -A", "unknown attribute 'nosuch'", "set-attr", "-p", "p1", "-A", "nosuch", "-V", "1"),
    r("set-attr -A", "the attribute name must not be empty", "set-attr", "-p", "p1", "-A", "", "-V", "1"),
    r("set-attr -A", "is a FreeBSD jail parameter", "set-attr", "-p", "p1", "-A", "devfs_ruleset", "-V", "5"),
    r("set-attr -V", "attribute persistent takes yes or no", "set-attr", "-p", "p1", "-A", "persistent", "-V", "maybe"),
    r("set-attr -V", "attribute persistent takes yes or no", "set-attr", "-p", "p1", "-A", "persistent", "-V", ""),
    r("set-attr -V", "stop_timeout takes a number of seconds from 0 to 86400", "set-attr", "-p", "p1", "-A",
      "stop_timeout", "-V", "-1"),
    r("set-attr -V", "stop_timeout takes a number", "set-attr", "-p", "p1", "-A", "stop_timeout", "-V", "1e3"),
    r("set-attr -V", "stop_timeout takes a number", "set-attr", "-p", "p1", "-A", "stop_timeout", "-V", HUGE),
    r("set-attr -V", "stop_timeout takes a number", "set-attr", "-p", "p1", "-A", "stop_timeout", "-V", "\u0663"),
    r("set-attr -V", "seccomp takes default or unconfined", "set-attr", "-p", "p1", "-A", "seccomp", "-V", "off"),
    r("set-attr -V", "sysvipc=disable is not supported on linux", "set-attr", "-p", "p1", "-A", "sysvipc", "-V",
      "disable"),
    r("set-attr -V", "devfs_ruleset takes a whole number from 1 to 65535",
      *FREEBSD, "set-attr", "-p", "p1", "-A", "devfs_ruleset", "-V", "65536"),
    r("set-attr -V", "enforce_statfs takes a whole number from 0 to 2",
      *FREEBSD, "set-attr", "-p", "p1", "-A", "enforce_statfs", "-V", "3"),
    r("set-attr -V", "children takes a whole number", *FREEBSD, "set-attr", "-p", "p1", "-A", "children", "-V", HUGE),
    r("get-attr -p", NO_POT, "get-attr", "-p", "nosuch", "-A", "persistent"),
    r("get-attr -p", BAD_POT, "get-attr", "-p", "../x", "-A", "persistent"),
    r("get-attr -A", "pot p1 has no attribute nosuch", "get-attr", "-p", "p1", "-A", "nosuch"),
    r("get-attr -A", "the attribute name must not be empty", "get-attr", "-p", "p1", "-A", ""),
    # create-fscomp, clone-fscomp
    r("create-fscomp -f", "fscomp name must not be empty", "create-fscomp", "-f", ""),
    r("create-fscomp -f", "invalid fscomp name '../x'", "create-fscomp", "-f", "../x"),
    r("create-fscomp -f", "invalid fscomp name 'a/b'", "create-fscomp", "-f", "a/b"),
    r("create-fscomp -f", "is too long", "create-fscomp", "-f", LONG),
    r("create-fscomp -f", "fscomp fs1 already exists", "create-fscomp", "-f", "fs1"),
    r("clone-fscomp -F", "fscomp nosuch does not exist", "clone-fscomp", "-F", "nosuch", "-f", "new"),
    r("clone-fscomp -F", "invalid fscomp name '../x'", "clone-fscomp", "-F", "../x", "-f", "new"),
    r("clone-fscomp -f", "fscomp fs1 already exists", "clone-fscomp", "-F", "fs1", "-f", "fs1"),
    r("clone-fscomp -f", "invalid fscomp name '../x'", "clone-fscomp", "-F", "fs1", "-f", "../x"),
    r("clone-fscomp -s", "fscomp fs1 has no snapshot nosuch", "clone-fscomp", "-F", "fs1", "-f", "new", "-s", "nosuch"),
    r("clone-fscomp -s", "snapshot name must not be empty", "clone-fscomp", "-F", "fs1", "-f", "new", "-s", ""),
    # add-fscomp, mount-in, mount-out
    r("add-fscomp -p", NO_POT, "add-fscomp", "-p", "nosuch", "-f", "fs1", "-m", "/x"),
    r("add-fscomp -f", "fscomp nosuch does not exist", "add-fscomp", "-p", "p1", "-f", "nosuch", "-m", "/x"),
    r("add-fscomp -f", "invalid fscomp name '../x'", "add-fscomp", "-p", "p1", "-f", "../x", "-m", "/x"),
    r("add-fscomp -m", "pot p1 already has a mount at /data", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", "/data"),
    r("add-fscomp -m", "mountpoint '' must be an absolute path", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", ""),
    r("add-fscomp -m", "mountpoint 'x' must be an absolute path", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", "x"),
    r("add-fscomp -m", "mountpoint must not be '/'", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", "/"),
    r("add-fscomp -m", "must not contain '..'", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", "/a/../../etc"),
    r("add-fscomp -m", "must not contain spaces or control characters", "add-fscomp", "-p", "p1", "-f", "fs1",
      "-m", "/a\nb"),
    r("add-fscomp -m", "has a component longer than 255 bytes", "add-fscomp", "-p", "p1", "-f", "fs1",
      "-m", "/" + "x" * 256),
    r("add-fscomp -m", "is too long", "add-fscomp", "-p", "p1", "-f", "fs1", "-m", "/x" * 600),
    r("add-fscomp -m", "must be an absolute path", "add-fscomp", "-p", "up", "-f", "fs1", "-m", "rel"),
    r("add-fscomp -m", "pot up: /bin/busybox: not a directory in the pot", "add-fscomp", "-p", "up", "-f", "fs1",
      "-m", "/bin/busybox"),
    r("mount-in -p", NO_POT, "mount-in", "-p", "nosuch", "-d", "{dir}", "-m", "/x"),
    r("mount-in -p", BAD_POT, "mount-in", "-p", "../x", "-d", "{dir}", "-m", "/x"),
    r("mount-in -d", "host directory {missing} does not exist", "mount-in", "-p", "p1", "-d", "{missing}", "-m", "/x"),
    r("mount-in -d", "host directory {file} is not a directory", "mount-in", "-p", "p1", "-d", "{file}", "-m", "/x"),
    r("mount-in -d", "host directory '", "mount-in", "-p", "p1", "-d", "{newline}", "-m", "/x"),
    r("mount-in -d", "host directory must not be empty", "mount-in", "-p", "p1", "-d", "", "-m", "/x"),
    r("mount-in -d", "host directory 'rel' must be an absolute path", "mount-in", "-p", "p1", "-d", "rel", "-m", "/x"),
    r("mount-in -d", "is too long", "mount-in", "-p", "p1", "-d", "{long}", "-m", "/x"),
    r("mount-in -m", "pot p1 already has a mount at /data", "mount-in", "-p", "p1", "-d", "{dir}", "-m", "/data"),
    r("mount-in -m", "mountpoint must not be '/'", "mount-in", "-p", "up", "-d", "{dir}", "-m", "/"),
    r("mount-in -m", "must not contain '..'", "mount-in", "-p", "up", "-d", "{dir}", "-m", "/../x"),
    r("mount-in -m", "pot up: /bin/sh: not a directory in the pot", "mount-in", "-p", "up", "-d", "{dir}",
      "-m", "/bin/sh"),
    r("mount-in -m", "pot up: /etc/passwd/x: Not a directory", "mount-in", "-p", "up", "-d", "{dir}",
      "-m", "/etc/passwd/x"),
    r("mount-out -p", NO_POT, "mount-out", "-p", "nosuch", "-m", "/data"),
    r("mount-out -m", "pot p1 has no mount at /nosuch", "mount-out", "-p", "p1", "-m", "/nosuch"),
    r("mount-out -m", "pot up has no mount at /nosuch", "mount-out", "-p", "up", "-m", "/nosuch"),
    r("mount-out -m", "mountpoint '' must be an absolute path", "mount-out", "-p", "p1", "-m", ""),
    r("mount-out -m", "mountpoint 'rel' must be an absolute path", "mount-out", "-p", "p1", "-m", "rel"),
    # copy-in, copy-out
    r("copy-in -p", NO_POT, "copy-in", "-p", "nosuch", "-s", "{file}", "-d", "/x"),
    r("copy-in -s", "{missing} does not exist", "copy-in", "-p", "p1", "-s", "{missing}", "-d", "/x"),
    r("copy-in -s", "does not exist", "copy-in", "-p", "p1", "-s", "{newline}", "-d", "/x"),
    r("copy-in -s", "source must not be empty", "copy-in", "-p", "p1", "-s", "", "-d", "/x"),
    r("copy-in -s", "source {fifo} is a FIFO, not a file or directory", "copy-in", "-p", "p1",
      "-s", "{fifo}", "-d", "/x"),
    r("copy-in -s", "source /dev/null is a device node, not a file or directory", "copy-in", "-p", "up",
      "-s", "/dev/null", "-d", "/x"),
    r("copy-in -s", "is too long", "copy-in", "-p", "p1", "-s", "{long}", "-d", "/x"),
    r("copy-in -d", "path '' must be an absolute path inside the pot", "copy-in", "-p", "p1", "-s", "{file}",
      "-d", ""),
    r("copy-in -d", "path 'rel' must be an absolute path inside the pot", "copy-in", "-p", "p1", "-s", "{file}",
      "-d", "rel"),
    r("copy-in -d", "path '/a\\x1bb' must not contain control characters", "copy-in", "-p", "p1", "-s", "{file}",
      "-d", "/a\x1bb"),
    r("copy-in -d", "path '/../x' must not contain '..'", "copy-in", "-p", "p1", "-s", "{file}", "-d", "/../x"),
    r("copy-in -d", "pot p1: /no/such: no such directory", "copy-in", "-p", "p1", "-s", "{file}", "-d", "/no/such/x"),
    r("copy-in -d", "pot up: /no/such: no such directory", "copy-in", "-p", "up", "-s", "{file}", "-d", "/no/such/x"),
    r("copy-out -p", NO_POT, "copy-out", "-p", "nosuch", "-s", "/etc/passwd", "-d", "{dir}"),
    r("copy-out -s", "pot p1: /nosuch: no such file or directory", "copy-out", "-p", "p1", "-s", "/nosuch",
      "-d", "{dir}"),
    r("copy-out -s", "pot up: /nosuch: no such file or directory", "copy-out", "-p", "up", "-s", "/nosuch",
      "-d", "{dir}"),
    r("copy-out -s", "path '' must be an absolute path inside the pot", "copy-out", "-p", "p1", "-s", "",
      "-d", "{dir}"),
    r("copy-out -s", "path '/../../etc/shadow' must not contain '..'", "copy-out", "-p", "p1", "-s",
      "/../../etc/shadow", "-d", "{dir}"),
    r("copy-out -s", "not its root", "copy-out", "-p", "p1", "-s", "/", "-d", "{dir}"),
    r("copy-out -s", "cannot copy out", "copy-out", "-p", "up", "-s", "/proc/1/environ", "-d", "{dir}"),
    r("copy-out -d", "destination directory {missing} does not exist", "copy-out", "-p", "p1", "-s", "/etc/passwd",
      "-d", "{missing}"),
    r("copy-out -d", "destination directory {file} is not a directory", "copy-out", "-p", "p1", "-s",
      "/etc/passwd", "-d", "{file}"),
    r("copy-out -d", "destination directory '", "copy-out", "-p", "p1", "-s", "/etc/passwd", "-d", "{newline}"),
    r("copy-out -d", "destination must not be empty", "copy-out", "-p", "p1", "-s", "/etc/passwd", "-d", ""),
    # snapshot, snap, rollback, revert, snapshots, promote, purge-snapshots
    r("snapshot", "give exactly one of -p POT or -f FSCOMP", "snapshot"),
    r("snapshot -p", NO_POT, "snapshot", "-p", "nosuch"),
    r("snapshot -p", "pot up is running", "snapshot", "-p", "up"),
    r("snapshot -p", "give exactly one of", "snapshot", "-p", "p1", "-f", "fs1"),
    r("snapshot -f", "fscomp nosuch does not exist", "snapshot", "-f", "nosuch"),
    r("snapshot -f", "invalid fscomp name '../x'", "snapshot", "-f", "../x"),
    r("snapshot -n", "snapshot pots/p1@s1 already exists", "snapshot", "-p", "p1", "-n", "s1"),
    r("snapshot -n", "snapshot name must not be empty", "snapshot", "-p", "p1", "-n", ""),
    r("snapshot -n", "invalid snapshot name '../x'", "snapshot", "-p", "p1", "-n", "../x"),
    r("snapshot -n", "invalid snapshot name '\xe9'", "snapshot", "-f", "fs1", "-n", "\xe9"),
    r("snapshot -n", "is too long", "snapshot", "-f", "fs1", "-n", LONG),
    r("snap", BAD_POT, "snap", "-p", "../x"),
    r("rollback", "give exactly one of -p POT or -f FSCOMP", "rollback"),
    r("rollback -p", NO_POT, "rollback", "-p", "nosuch"),
    r("rollback -p", "pot up has no snapshot", "rollback", "-p", "up"),
    r("rollback -p", "pot p2 has no snapshot", "rollback", "-p", "p2"),
    r("rollback -f", "fscomp nosuch does not exist", "rollback", "-f", "nosuch"),
    r("rollback -s", "snapshot pots/p1@nosuch does not exist", "rollback", "-p", "p1", "-s", "nosuch"),
    r("rollback -s", "snapshot name must not be empty", "rollback", "-f", "fs1", "-s", ""),
    r("rollback -s", "invalid snapshot name '../x'", "rollback", "-f", "fs1", "-s", "../x"),
    r("revert", BAD_POT, "revert", "-p", "../x"),
    r("snapshots", "give exactly one of", "snapshots"),
    r("snapshots -p", NO_POT, "snapshots", "-p", "nosuch"),
    r("snapshots -p", "give exactly one of", "snapshots", "-p", "p1", "-f", "fs1"),
    r("snapshots -f", "fscomp nosuch does not exist", "snapshots", "-f", "nosuch"),
    r("promote", "give exactly one of", "promote"),
    r("promote -p", NO_POT, "promote", "-p", "nosuch"),
    r("promote -f", "fscomp nosuch does not exist", "promote", "-f", "nosuch"),
    r("promote -f", "invalid fscomp name 'a/b'", "promote", "-f", "a/b"),
    r("purge-snapshots", "give exactly one of", "purge-snapshots"),
    r("purge-snapshots -p", NO_POT, "purge-snapshots", "-p", "nosuch"),
    r("purge-snapshots -f", "fscomp nosuch does not exist", "purge-snapshots", "-f", "nosuch"),
    r("purge-snapshots -k", "-k takes a whole number from 0 to 1000000, not '-1'", "purge-snapshots", "-f", "fs1",
      "-k", "-1"),
    r("purge-snapshots -k", f"-k takes a whole number from 0 to 1000000, not '{HUGE}'", "purge-snapshots",
      "-f", "fs1", "-k", HUGE),
    r("purge-snapshots -k", "argument -k: invalid int value: '1e23'", "purge-snapshots", "-f", "fs1", "-k", "1e23"),
    r("purge-snapshots -k", "argument -k: invalid int value: ''", "purge-snapshots", "-f", "fs1", "-k", ""),
    r("purge-snapshots -a", "argument -k: not allowed with argument -a", "purge-snapshots", "-f", "fs1", "-a",
      "-k", "5"),
    r("purge-snapshots -a", "argument -a: not allowed with argument -k", "purge-snapshots", "-f", "fs1", "-k", "1",
      "-a"),
    r("purge-snapshots -a", "snapshot pots/p1@s1 is used by pots/p2", "purge-snapshots", "-p", "p1", "-a"),
    # start, stop, exec, term, logs, signal, wait, last-run-stats
    r("start", "no pot given", "start"),
    r("start positional", NO_POT, "start", "nosuch"),
    r("start positional", BAD_POT, "start", "../x"),
    r("start positional", "pot up is already running", "start", "up"),
    r("start positional", "two pot names given", "start", "a", "-p", "b"),
    r("start -p", NO_POT, "start", "-d", "-p", "nosuch"),
    r("start -p", "pot name must not be empty", "start", "-p", ""),
    r("stop", "no pot given", "stop"),
    r("stop positional", NO_POT, "stop", "nosuch"),
    r("stop positional", BAD_POT, "stop", "../x"),
    r("stop -p", "invalid pot name 'a b'", "stop", "-p", "a b"),
    r("exec", "no pot given", "exec"),
    r("exec -p", NO_POT, "exec", "-p", "nosuch", "true"),
    r("exec -p", "pot p1 is not running", "exec", "-p", "p1", "true"),
    r("exec args", NO_POT, "exec", "nosuch", "--", "true"),
    r("exec args", BAD_POT, "exec", "../x", "true"),
    r("exec args", "no command given", "exec", "up"),
    r("exec args", "cannot run '/nonexistent'", "exec", "up", "--", "/nonexistent"),
    r("exec -e", "invalid environment entry 'x'", "exec", "-e", "x", "up", "--", "true"),
    r("exec -e", "invalid environment entry '1=2'", "exec", "-e", "1=2", "up", "--", "true"),
    r("exec -e", "is too long", "exec", "-e", "A" * 70000 + "=1", "up", "--", "true"),
    r("term", "no pot given", "term"),
    r("term positional", NO_POT, "term", "nosuch"),
    r("term positional", "pot p1 is not running", "term", "p1"),
    r("term -p", BAD_POT, "term", "-p", "../x"),
    r("logs", "no pot given", "logs"),
    r("logs positional", NO_POT, "logs", "nosuch"),
    r("logs -p", BAD_POT, "logs", "-p", "../x"),
    r("signal", "no pot given", "signal"),
    r("signal positional", NO_POT, "signal", "nosuch"),
    r("signal -p", "pot p1 is not running", "signal", "-p", "p1"),
    r("signal -s", "unknown signal 'NOSUCH'", "signal", "-p", "up", "-s", "NOSUCH"),
    r("signal -s", "no signal number 99999999999 on this host", "signal", "-p", "up", "-s", "99999999999"),
    r("signal -s", "unknown signal '-1'", "signal", "-p", "up", "-s", "-1"),
    r("signal -s", "no signal number 0", "signal", "-p", "up", "-s", "0"),
    r("signal -s", "unknown signal ''", "signal", "-p", "up", "-s", ""),
    r("signal -s", "unknown signal '\xb2'", "signal", "-p", "up", "-s", "\xb2"),
    r("signal -s", "unknown signal '\uff11\uff15'", "signal", "-p", "up", "-s", "\uff11\uff15"),
    # set-health, healthcheck, add-dep, del-dep, set-hook, restart, boot
    r("set-health", "the following arguments are required: -p", "set-health", "-c", "true"),
    r("set-health -p", NO_POT, "set-health", "-p", "nosuch", "-c", "true"),
    r("set-health -p", BAD_POT, "set-health", "-p", "../x", "-c", "true"),
    r("set-health -c", "the healthcheck command must not be empty", "set-health", "-p", "p1", "-c", " "),
    r("set-health -c", "the healthcheck command must not be empty", "set-health", "-p", "p1"),
    r("set-health -c", "--remove takes no -c", "set-health", "-p", "p1", "-c", "true", "--remove"),
    r("set-health -c", "the healthcheck command is too long", "set-health", "-p", "p1", "-c", "x" * 70000),
    r("set-health --interval", "--interval takes more than 0 to 24h, not '0s'", "set-health", "-p", "p1", "-c",
      "true", "--interval", "0s"),
    r("set-health --interval", "--interval takes a duration like 30s", "set-health", "-p", "p1", "-c", "true",
      "--interval", "soon"),
    r("set-health --interval", "--interval takes a duration like 30s", "set-health", "-p", "p1", "-c", "true",
      "--interval=-1s"),
    r("set-health --interval", "--interval takes more than 0 to 24h", "set-health", "-p", "p1", "-c", "true",
      "--interval", "25h"),
    r("set-health --interval", "--interval takes a duration like 30s", "set-health", "-p", "p1", "-c", "true",
      "--interval", "\uff11s"),
    r("set-health --timeout", "--timeout takes more than 0 to 24h, not '0'", "set-health", "-p", "p1", "-c",
      "true", "--timeout", "0"),
    r("set-health --timeout", "--timeout takes a duration like 30s", "set-health", "-p", "p1", "-c", "true",
      "--timeout", HUGE + "x"),
    r("set-health --retries", "--retries takes a number from 1 to 1000, not '0'", "set-health", "-p", "p1", "-c",
      "true", "--retries", "0"),
    r("set-health --retries", "--retries takes a number from 1 to 1000", "set-health", "-p", "p1", "-c", "true",
      "--retries", HUGE),
    r("set-health --retries", "--retries takes a number from 1 to 1000", "set-health", "-p", "p1", "-c", "true",
      "--retries", "-1"),
    r("set-health --start-period", "--start-period takes a duration like 30s", "set-health", "-p", "p1", "-c",
      "true", "--start-period", "1d"),
    r("set-health --start-period", "--start-period takes 0 to 24h", "set-health", "-p", "p1", "-c", "true",
      "--start-period", "99999h"),
    r("healthcheck", "no pot given", "healthcheck"),
    r("healthcheck positional", NO_POT, "healthcheck", "nosuch"),
    r("healthcheck positional", "pot up has no healthcheck", "healthcheck", "up"),
    r("healthcheck -p", BAD_POT, "healthcheck", "-p", "../x"),
    r("add-dep", "the following arguments are required: -p, -P", "add-dep"),
    r("add-dep -p", NO_POT, "add-dep", "-p", "nosuch", "-P", "p1"),
    r("add-dep -p", "pot p1 cannot depend on itself", "add-dep", "-p", "p1", "-P", "p1"),
    r("add-dep -P", "pot nosuch does not exist", "add-dep", "-p", "p1", "-P", "nosuch"),
    r("add-dep -P", BAD_POT, "add-dep", "-p", "p1", "-P", "../x"),
    r("del-dep", "the following arguments are required: -P", "del-dep", "-p", "p1"),
    r("del-dep -p", BAD_POT, "del-dep", "-p", "../x", "-P", "p1"),
    r("del-dep -P", "pot p1 does not depend on up", "del-dep", "-p", "p1", "-P", "up"),
    r("del-dep -P", "pot name must not be empty", "del-dep", "-p", "p1", "-P", ""),
    r("set-hook", "no hook given", "set-hook", "-p", "p1"),
    r("set-hook -p", NO_POT, "set-hook", "-p", "nosuch", "-s", "/bin/true"),
    r("set-hook -s", "the prestart hook must be an absolute path, not 'relative/path'", "set-hook", "-p", "p1",
      "-s", "relative/path"),
    r("set-hook -s", "the prestart hook {missing} is not a file", "set-hook", "-p", "p1", "-s", "{missing}"),
    r("set-hook -S", "the poststart hook {dir} is not a file", "set-hook", "-p", "p1", "-S", "{dir}"),
    r("set-hook -t", "the prestop hook {file} is not executable", "set-hook", "-p", "p1", "-t", "{file}"),
    r("set-hook -T", "the poststop hook must be an absolute path", "set-hook", "-p", "p1", "-T", "{newline}"),
    r("set-hook -T", "the poststop hook {fifo} is not a file", "set-hook", "-p", "p1", "-T", "{fifo}"),
    r("restart", "no pot given", "restart"),
    r("restart positional", NO_POT, "restart", "nosuch"),
    r("restart -p", BAD_POT, "restart", "-p", "../x"),
    r("boot", "unrecognized arguments: p1", "boot", "p1"),
    r("set-attr -V", "attribute restart takes no, on-failure[:N], always or unless-stopped, not 'sometimes'",
      "set-attr", "-p", "p1", "-A", "restart", "-V", "sometimes"),
    r("set-attr -V", "restart on-failure:N takes N from 1 to 1000000, not '0'", "set-attr", "-p", "p1", "-A",
      "restart", "-V", "on-failure:0"),
    r("set-attr -V", "restart on-failure:N takes N from 1", "set-attr", "-p", "p1", "-A", "restart", "-V",
      "on-failure:" + HUGE),
    r("set-attr -V", "attribute restart takes no", "set-attr", "-p", "p1", "-A", "restart", "-V", "always:3"),
    r("set-attr -V", "attribute restart-unhealthy takes yes or no", "set-attr", "-p", "p1", "-A",
      "restart-unhealthy", "-V", "maybe"),
    r("wait", "no pot given", "wait"),
    r("wait positional", NO_POT, "wait", "nosuch"),
    r("wait -p", BAD_POT, "wait", "-p", "../x"),
    r("last-run-stats", "no pot given", "last-run-stats"),
    r("last-run-stats positional", NO_POT, "last-run-stats", "nosuch"),
    r("last-run-stats -p", BAD_POT, "last-run-stats", "-p", "../x"),
    # run
    r("run", "the following arguments are required: BASE", "run"),
    r("run base", "cannot reach registry 127.0.0.1:1", "run", "127.0.0.1:1/nosuch:1", "true"),
    r("run base", "invalid registry host '..' in '../x'", "run", "../x", "true"),
    r("run base", "invalid image reference 'a b'", "run", "a b", "true"),
    r("run base", "the base or image must not be empty", "run", "", "true"),
    r("run --entrypoint", "--entrypoint is for images: busybox is a local base", "run", "--entrypoint", "/bin/sh",
      "busybox", "true"),
    r("run --entrypoint", "--entrypoint must not be empty", "run", "--entrypoint", "", "127.0.0.1:1/x:1"),
    r("run -P", "--publish-all is for images (their ExposedPorts): busybox is a local base", "run", "-P", "busybox",
      "true"),
    r("run args", "no command given", "run", "busybox"),
    r("run args", "no command given", "run", "-d", "busybox", "--"),
    r("run -p", "pot up already exists", "run", "-p", "up", "busybox", "true"),
    r("run -p", BAD_POT, "run", "-p", "../x", "busybox", "true"),
    r("run -p", "not all digits", "run", "--name", "1234", "busybox", "true"),
    r("run -N", "argument -N: invalid choice: 'x'", "run", "-N", "x", "busybox", "true"),
    r("run -N", "network full (10.192.0.4/30) has no free address left", "run", "-p", "new", "-N", "private-bridge",
      "-B", "full", "busybox", "true"),
    r("run -i", "-i is for -N alias, public-bridge or private-bridge, not -N none", "run", "-i", "10.192.0.5",
      "busybox", "true"),
    r("run -i", "10.192.0.2 is already leased to pot web", *RUN, "-i", "10.192.0.2", "busybox", "true"),
    r("run -B", "private bridge nosuch does not exist", "run", "-N", "private-bridge", "-B", "nosuch", "busybox",
      "true"),
    r("run -S", "argument -S: invalid choice: 'x'", *RUN, "-S", "x", "busybox", "true"),
    r("run --dns", "DNS server '1.2.3': not an IP address", *RUN, "--dns", "1.2.3", "busybox", "true"),
    r("run -e", "host port 8080/tcp is already exported by pot web", *RUN, "-e", "80:8080", "busybox", "true"),
    r("run -e", "-e '80:70000': a port is a number from 1 to 65535, not '70000'", *RUN, "-e", "80:70000", "busybox",
      "true"),
    r("run -e", "-e '0': a port is a number from 1 to 65535", *RUN, "-e", "0", "busybox", "true"),
    r("run -e", "-e '80/sctp': the protocol is tcp or udp, not 'sctp'", *RUN, "-e", "80/sctp", "busybox", "true"),
    r("run -e", "host port 9090/tcp is given twice", *RUN, "-e", "80:9090", "-e", "81:9090", "busybox", "true"),
    r("run -e", "only a pot on a bridge can export ports, not one of -N none", "run", "-e", "80", "busybox", "true"),
    r("run -e", "network full (10.192.0.4/30) has no free address left", "run", "-p", "new", "-N", "private-bridge",
      "-B", "full", "-e", "80:9091", "busybox", "true"),
    # set-network, export-ports, set-hosts
    r("set-network", "the following arguments are required: -p, -N", "set-network"),
    r("set-network -p", NO_POT, "set-network", "-p", "nosuch", "-N", "none"),
    r("set-network -p", "pot up is running: stop it first", "set-network", "-p", "up", "-N", "public-bridge"),
    r("set-network -p", BAD_POT, "set-network", "-p", "../x", "-N", "none"),
    r("set-network -N", "argument -N: invalid choice: 'bridge'", "set-network", "-p", "p1", "-N", "bridge"),
    r("set-network -N", "network full (10.192.0.4/30) has no free address left", "set-network", "-p", "p1", "-N",
      "private-bridge", "-B", "full"),
    r("set-network -i", "10.192.0.2 is already leased to pot web", "set-network", "-p", "p1", "-N", "public-bridge",
      "-i", "10.192.0.2"),
    r("set-network -i", "-N alias needs -i [IF|]IP", "set-network", "-p", "p1", "-N", "alias"),
    r("set-network -B", "private bridge nosuch does not exist", "set-network", "-p", "p1", "-N", "private-bridge",
      "-B", "nosuch"),
    r("set-network -B", "-B br1 is for -N private-bridge only", "set-network", "-p", "p1", "-N", "none", "-B", "br1"),
    r("set-network -S", "argument -S: invalid choice: 'v4'", "set-network", "-p", "p1", "-N", "none", "-S", "v4"),
    r("set-network -S", "-i 10.192.0.5 is an IPv4 address, but the pot's stack is ipv6", "set-network", "-p", "p1",
      "-N", "public-bridge", "-S", "ipv6", "-i", "10.192.0.5"),
    r("export-ports", "the following arguments are required: -p, -e", "export-ports"),
    r("export-ports -p", NO_POT, "export-ports", "-p", "nosuch", "-e", "80"),
    r("export-ports -p", BAD_POT, "export-ports", "-p", "../x", "-e", "80"),
    r("export-ports -e", "host port 8080/tcp is already exported by pot web", "export-ports", "-p", "onfull", "-e",
      "81:8080"),
    r("export-ports -e", "only a pot on a bridge can export ports, not one of -N none", "export-ports", "-p", "p1",
      "-e", "80"),
    r("export-ports -e", "a port is a number from 1 to 65535, not '65536'", "export-ports", "-p", "web", "-e",
      "65536"),
    r("export-ports -e", "a port is a number from 1 to 65535, not 'x'", "export-ports", "-p", "web", "-e", "80:x"),
    r("export-ports -e", "the protocol is tcp or udp, not 'icmp'", "export-ports", "-p", "web", "-e", "80/icmp"),
    r("export-ports -e", "-e must not be empty", "export-ports", "-p", "web", "-e", ""),
    r("set-hosts", "the following arguments are required: -p, -H", "set-hosts"),
    r("set-hosts -p", NO_POT, "set-hosts", "-p", "nosuch", "-H", "db:192.0.2.1"),
    r("set-hosts -p", BAD_POT, "set-hosts", "-p", "../x", "-H", "db:192.0.2.1"),
    r("set-hosts -H", "-H 'db': expected NAME:IP", "set-hosts", "-p", "web", "-H", "db"),
    r("set-hosts -H", "invalid host name 'a..b'", "set-hosts", "-p", "web", "-H", "a..b:192.0.2.1"),
    r("set-hosts -H", "-H 'x': not an IP address", "set-hosts", "-p", "web", "-H", "db:x"),
    # network, create-private-bridge, destroy-private-bridge
    r("network", "the following arguments are required: action", "network"),
    r("network action", "argument action: invalid choice: 'rm'", "network", "rm"),
    r("network name", "network ls takes no NAME", "network", "ls", "public"),
    r("network name", "no network given", "network", "show"),
    r("network name", "network nosuch does not exist", "network", "show", "nosuch"),
    r("network name", "invalid network name '../x'", "network", "show", "../x"),
    r("network name", "network name must not be empty", "network", "show", ""),
    r("create-private-bridge", "the following arguments are required: -B", "create-private-bridge", "-S", "3"),
    r("create-private-bridge -B", "invalid bridge name '../x'", "create-private-bridge", "-B", "../x", "-S", "3"),
    r("create-private-bridge -B", "bridge name must not be empty", "create-private-bridge", "-B", "", "-S", "3"),
    r("create-private-bridge -B", "is too long", "create-private-bridge", "-B", LONG, "-S", "3"),
    r("create-private-bridge -B", "public is the public bridge's network", "create-private-bridge", "-B", "public",
      "-S", "3"),
    r("create-private-bridge -B", "network br1 already exists", "create-private-bridge", "-B", "br1", "-S", "3"),
    r("create-private-bridge -S", "give one of -S SIZE or -n NETWORK", "create-private-bridge", "-B", "b"),
    r("create-private-bridge -S", "-S takes a number of pots from 1, not 0", "create-private-bridge", "-B", "b",
      "-S", "0"),
    r("create-private-bridge -S", "-S takes a whole number from 0 to 16777216, not '-1'", "create-private-bridge",
      "-B", "b", "-S", "-1"),
    r("create-private-bridge -S", "-S takes a whole number from 0 to 16777216", "create-private-bridge", "-B", "b",
      "-S", HUGE),
    r("create-private-bridge -S", "argument -S: invalid int value: 'x'", "create-private-bridge", "-B", "b",
      "-S", "x"),
    r("create-private-bridge -S", "a /9 does not fit in the IPv4 network 10.192.0.0/10", "create-private-bridge",
      "-B", "b", "-S", "5000000"),
    r("create-private-bridge -n", "argument -n: not allowed with argument -S", "create-private-bridge", "-B", "b",
      "-S", "3", "-n", "10.192.1.0/24"),
    r("create-private-bridge -n", "-n 10.192.0.8/30 overlaps private bridge br1 (10.192.0.8/29)",
      "create-private-bridge", "-B", "b", "-n", "10.192.0.8/30"),
    r("create-private-bridge -n", "a private bridge's network is a /30 or larger inside 10.192.0.0/10",
      "create-private-bridge", "-B", "b", "-n", "10.0.0.0/24"),
    r("create-private-bridge -n", "a private bridge's network is a /30 or larger", "create-private-bridge", "-B",
      "b", "-n", "10.192.1.0/31"),
    r("create-private-bridge -n", "has host bits set", "create-private-bridge", "-B", "b", "-n", "10.192.1.1/24"),
    r("create-private-bridge -n", "-n 'x'", "create-private-bridge", "-B", "b", "-n", "x"),
    r("create-private-bridge -n", "-n 'fd00::/64'", "create-private-bridge", "-B", "b", "-n", "fd00::/64"),
    r("create-private-bridge -n", "-n 10.192.0.0/30 holds 10.192.0.0, the public bridge's network address",
      "create-private-bridge", "-B", "b", "-n", "10.192.0.0/30"),
    r("create-private-bridge -n", "-n must not be empty", "create-private-bridge", "-B", "b", "-n", ""),
    r("destroy-private-bridge", "the following arguments are required: -B", "destroy-private-bridge"),
    r("destroy-private-bridge -B", "private bridge nosuch does not exist", "destroy-private-bridge", "-B", "nosuch"),
    r("destroy-private-bridge -B", "invalid bridge name 'a b'", "destroy-private-bridge", "-B", "a b"),
    r("destroy-private-bridge -B", "private bridge br1 is used by pots up", "destroy-private-bridge", "-B", "br1"),
    r("destroy-private-bridge -B", "public is the public bridge's network", "destroy-private-bridge", "-B",
      "public"),
    # images
    r("commit", "the following arguments are required: -p", "commit", "127.0.0.1:1/x:1"),
    r("commit -p", BAD_POT, "commit", "-p", "../x", "127.0.0.1:1/x:1"),
    r("commit -p", "pot nosuch does not exist", "commit", "-p", "nosuch", "127.0.0.1:1/x:1"),
    r("commit -p", "pot up is running: stop it first", "commit", "-p", "up", "127.0.0.1:1/x:1"),
    r("commit -p", "pot p2 is neither made from an image nor a multi level 1 pot on a base", "commit", "-p", "p2",
      "127.0.0.1:1/x:1"),
    r("commit -p", "commit has no dry run", "--dry-run", "commit", "-p", "p1", "127.0.0.1:1/x:1"),
    r("commit ref", "the following arguments are required: REF", "commit", "-p", "p1"),
    r("commit ref", "invalid image reference 'a b'", "commit", "-p", "p1", "a b"),
    r("commit ref", "the image reference must not be empty", "commit", "-p", "p1", ""),
    r("commit ref", "invalid tag 'bad/tag'", "commit", "-p", "p1", "127.0.0.1:1/x:bad/tag"),
    r("pull", "the following arguments are required: REF", "pull"),
    r("pull", "pull has no dry run", "--dry-run", "pull", "127.0.0.1:1/x:1"),
    r("pull ref", "image reference must not be empty", "pull", ""),
    r("pull ref", "invalid image reference 'a b'", "pull", "a b"),
    r("pull ref", "invalid repository 'UPPER' in", "pull", "127.0.0.1:1/UPPER:1"),
    r("pull ref", "invalid tag 'bad/tag'", "pull", "127.0.0.1:1/x:bad/tag"),
    r("pull ref", "invalid digest 'sha256:../../x'", "pull", "127.0.0.1:1/x@sha256:../../x"),
    r("pull ref", "unsupported digest algorithm in 'md5:abc'", "pull", "x@md5:abc"),
    r("pull ref", "invalid registry host", "pull", "a..b:1/x:1"),
    r("pull ref", "is too long (at most 255 characters)", "pull", "127.0.0.1:1/" + "a" * 300),
    r("pull ref", "cannot reach registry 127.0.0.1:1", "pull", "127.0.0.1:1/x:1"),
    r("push", "the following arguments are required: REF", "push"),
    r("push ref", "image 127.0.0.1:1/x:1 is not in the store", "push", "127.0.0.1:1/x:1"),
    r("push ref", "invalid repository 'X' in", "push", "127.0.0.1:1/X:1"),
    r("push dest", "invalid tag '/'", "push", "127.0.0.1:1/x:1", "127.0.0.1:1/y:/"),
    r("push dest", "image reference must not be empty", "push", "127.0.0.1:1/x:1", ""),
    r("push --chunk-size", "argument --chunk-size: invalid int value: 'x'", "push", "--chunk-size", "x", "a"),
    r("push --chunk-size", "--chunk-size takes 0 (one request) to 4 GiB, not -1", "push", "--chunk-size", "-1",
      "127.0.0.1:1/x:1"),
    r("push --chunk-size", f"--chunk-size takes 0 (one request) to 4 GiB, not {HUGE}", "push", "--chunk-size", HUGE,
      "127.0.0.1:1/x:1"),
    r("login", "the following arguments are required: REGISTRY, -u", "login"),
    r("login registry", "invalid registry 'a b'", "login", "a b", "-u", "x", "--password-stdin"),
    r("login registry", "invalid registry ''", "login", "", "-u", "x", "--password-stdin"),
    r("login -u", "invalid user name 'a:b'", "login", "127.0.0.1:1", "-u", "a:b", "--password-stdin"),
    r("login -u", "invalid user name ''", "login", "127.0.0.1:1", "-u", "", "--password-stdin"),
    r("login --password-stdin", "give the password on stdin with --password-stdin", "login", "127.0.0.1:1", "-u",
      "x"),
    r("login --password-stdin", "a password must not be empty", "login", "127.0.0.1:1", "-u", "x",
      "--password-stdin"),
    r("images", "unrecognized arguments: x", "images", "x"),
    r("rmi", "the following arguments are required: REF", "rmi"),
    r("rmi ref", "image 127.0.0.1:1/x:1 is not in the store", "rmi", "127.0.0.1:1/x:1"),
    r("rmi ref", "invalid digest 'sha256:../../etc'", "rmi", "x@sha256:../../etc"),
    r("rmi ref", f"image sha256:{'0' * 64} is not in the store", "rmi", "sha256:" + "0" * 64),
    r("tag", "the following arguments are required: SRC, DST", "tag"),
    r("tag source", "image 127.0.0.1:1/x:1 is not in the store", "tag", "127.0.0.1:1/x:1", "y:1"),
    r("tag source", "invalid digest 'sha256:../x'", "tag", "x@sha256:../x", "y:1"),
    r("tag dest", "invalid repository 'library/Y' in", "tag", "127.0.0.1:1/x:1", "Y:1"),
    r("tag dest", "image reference must not be empty", "tag", "127.0.0.1:1/x:1", ""),
    r("save", "the following arguments are required: REF, -o", "save"),
    r("save ref", "image 127.0.0.1:1/x:1 is not in the store", "save", "127.0.0.1:1/x:1", "-o", "{missing}"),
    r("save ref", "invalid tag '-a'", "save", "x:-a", "-o", "{missing}"),
    r("save -o", "-o must not be empty", "save", "x:1", "-o", ""),
    r("save -o", "argument -o/--output: expected one argument", "save", "x:1", "-o"),
    r("load", "the following arguments are required: -i", "load"),
    r("load -i", "-i must not be empty", "load", "-i", ""),
    r("load -i", "no archive", "load", "-i", "{missing}"),
    r("load -i", "is not a tar archive", "load", "-i", "{random}"),
    r("load -i", "is not a file", "load", "-i", "{dir}"),
    r("load -i", "is not a file", "load", "-i", "{fifo}"),
    r("load -i", "is not a tar archive", "load", "-i", "{truncated}"),
    r("image", "the following arguments are required: action", "image"),
    r("image action", "argument action: invalid choice: 'nosuch'", "image", "nosuch"),
    # build
    r("build", "the following arguments are required: -t", "build", "{dir}"),
    r("build -t", "-t must not be empty", "build", "-t", "", "-f", "{cf_scratch}", "{dir}"),
    r("build -t", "invalid tag 'bad/tag'", "build", "-t", "localhost/x:bad/tag", "-f", "{cf_scratch}", "{dir}"),
    r("build -t", "argument -t/--tag: expected one argument", "build", "{dir}", "-t"),
    r("build -f", "no Containerfile", *BUILD, "-f", "{missing}", "{dir}"),
    r("build -f", "no Containerfile", *BUILD, "{dir}"),
    r("build -f", "-f must not be empty", *BUILD, "-f", "", "{dir}"),
    r("build -f", "Is a directory", *BUILD, "-f", "{dir}", "{dir}"),
    r("build -f", "random.tar is not UTF-8 text", *BUILD, "-f", "{random}", "{dir}"),
    r("build -f", "file line 1: unknown instruction a", *BUILD, "-f", "{file}", "{dir}"),
    r("build -f", "cf_unknown line 2: unknown instruction FROB", *BUILD, "-f", "{cf_unknown}", "{dir}"),
    r("build -f", "cf_escape line 2: source ../file is outside the build context", *BUILD, "-f", "{cf_escape}",
      "{dir}"),
    r("build -f", "FROM scratch and nothing added: there is no image to name", *BUILD, "-f", "{cf_scratch}",
      "{dir}"),
    r("build -f", "the first instruction (after ARGs) must be FROM", *BUILD, "-f", "{cf_nofrom}", "{dir}"),
    r("build -f", "stage name a is already the name of stage 0", *BUILD, "-f", "{cf_dup}", "{dir}"),
    r("build -f", "an unterminated \" quote", *BUILD, "-f", "{cf_quote}", "{dir}"),
    r("build context", "the build context", *BUILD, "-f", "{cf_scratch}", "{file}"),
    r("build context", "is not a directory", *BUILD, "-f", "{cf_scratch}", "{missing}"),
    r("build context", "the build context must not be empty", *BUILD, "-f", "{cf_scratch}", ""),
    r("build --build-arg", "--build-arg takes NAME=VALUE, not 'NOEQ'", *BUILD, "--build-arg", "NOEQ", "{dir}"),
    r("build --build-arg", "--build-arg takes NAME=VALUE, not '=v'", *BUILD, "--build-arg", "=v", "{dir}"),
    r("build --network", "build's --network is none or inherit, not 'public-bridge'", *BUILD, "-f", "{cf_scratch}",
      "--network", "public-bridge", "{dir}"),
    # set-rss, get-rss, stats, ps
    r("set-rss", "the following arguments are required: -p", "set-rss", "-M", "1G"),
    r("set-rss", "set-rss needs at least one of -C, -M, --pids, --pcpu", "set-rss", "-p", "p1"),
    r("set-rss -p", NO_POT, "set-rss", "-p", "nosuch", "-M", "1G"),
    r("set-rss -p", BAD_POT, "set-rss", "-p", "../x", "-M", "1G"),
    r("set-rss -M", "-M takes a size such as 512M or 2G", "set-rss", "-p", "p1", "-M", "10Q"),
    r("set-rss -M", "-M takes a size such as 512M or 2G", "set-rss", "-p", "up", "-M-5M"),
    r("set-rss -M", "the value of -M must not be empty", "set-rss", "-p", "p1", "-M", ""),
    r("set-rss -M", "-M takes a size such as 512M or 2G", "set-rss", "-p", "p1", "-M", "1.5G"),
    r("set-rss -M", "a memory limit must be from 1M to", "set-rss", "-p", "p1", "-M", "1K"),
    r("set-rss -M", "a memory limit must be from 1M to", "set-rss", "-p", "up", "-M", "0"),
    r("set-rss -M", "a memory limit must be from 1M to", "set-rss", "-p", "p1", "-M", "99999999G"),
    r("set-rss -M", "-M takes a size such as 512M or 2G", "set-rss", "-p", "p1", "-M", HUGE),
    r("set-rss -C", "a CPU count must be from 1 to the host's CPUs", "set-rss", "-p", "p1", "-C", "99"),
    r("set-rss -C", "a CPU count must be from 1 to the host's CPUs", "set-rss", "-p", "up", "-C", "0"),
    r("set-rss -C", "this host has no CPU 99", "set-rss", "-p", "p1", "-C", "0,99"),
    r("set-rss -C", "-C takes a CPU count or a list", "set-rss", "-p", "p1", "-C", "-1"),
    r("set-rss -C", "-C takes a CPU count or a list", "set-rss", "-p", "p1", "-C", "a,b"),
    r("set-rss -C", "-C takes a CPU count or a list", "set-rss", "-p", "p1", "-C", ","),
    r("set-rss -C", "the value of -C must not be empty", "set-rss", "-p", "p1", "-C", ""),
    r("set-rss -C", "a CPU count must be from 1 to the host's CPUs", "set-rss", "-p", "p1", "-C", HUGE),
    r("set-rss --pids", "--pids takes a number from 0 (no limit) to 4194304", "set-rss", "-p", "p1", "--pids", "-1"),
    r("set-rss --pids", "--pids takes a number", "set-rss", "-p", "up", "--pids", HUGE),
    r("set-rss --pids", "--pids takes a number", "set-rss", "-p", "p1", "--pids", "20x"),
    r("set-rss --pids", "--pids takes a number", "set-rss", "-p", "p1", "--pids", "\uff12"),
    r("set-rss --pcpu", "--pcpu takes a percentage of one CPU from 1 to", "set-rss", "-p", "p1", "--pcpu", "0"),
    r("set-rss --pcpu", "--pcpu takes a percentage", "set-rss", "-p", "up", "--pcpu", "-20"),
    r("set-rss --pcpu", "--pcpu takes a percentage", "set-rss", "-p", "p1", "--pcpu", "20%"),
    r("set-rss --pcpu", "--pcpu takes a percentage", "set-rss", "-p", "p1", "--pcpu", "99999"),
    r("set-rss --dry-run", "argument --dry-run: ignored explicit argument '1'", "set-rss", "--dry-run=1", "-p", "p1",
      "-M", "1G"),
    r("get-rss", "the following arguments are required: -p", "get-rss"),
    r("get-rss -p", "pot p1 is not running", "get-rss", "-p", "p1"),
    r("get-rss -p", NO_POT, "get-rss", "-p", "nosuch"),
    r("get-rss -p", BAD_POT, "get-rss", "-p", "../x"),
    r("stats", "unrecognized arguments: --interval", "stats", "--interval", "1"),
    r("stats names", "pot p1 is not running", "stats", "p1"),
    r("stats names", NO_POT, "stats", "up", "nosuch"),
    r("stats names", BAD_POT, "stats", "../x"),
    r("ps", "no pot given", "ps"),
    r("ps positional", "pot p1 is not running", "ps", "p1"),
    r("ps positional", NO_POT, "ps", "nosuch"),
    r("ps -p", BAD_POT, "ps", "-p", "../x"),
    r("show -p", "pot p1 is not running", "show", "-p", "p1"),
    r("show -p", NO_POT, "show", "-p", "nosuch"),
    r("show -p", BAD_POT, "show", "-p", "../x"),
    r("show -p", "expected one argument", "show", "-p"),
    r("show", "unrecognized arguments: p1", "show", "p1"),
]

# What has no row, and why.
NOT_APPLICABLE = {
    "-V": "--version prints the version: there is no value to get wrong",
    "-h": "--help prints the usage and exits 0, of every verb (test_help_still_prints_the_usage_and_exits_0)",
}


def _flag_rows() -> list[Row]:
    """A flag's only bad input is a value: `--json=1`, `-q1` (argparse: 'ignored explicit argument')."""
    rows = []
    for verb, action in _options():
        if isinstance(action, argparse._StoreTrueAction):
            flag = action.option_strings[0]
            bad = f"{flag}=1" if flag.startswith("--") else f"{flag}1"
            says = f"argument {'/'.join(action.option_strings)}: ignored explicit argument '1'"
            rows.append(Row(f"{verb} {flag}".strip(), says,
                            (verb, bad) if verb else (bad, "ls")))
        elif action.dest == "host" and verb:
            rows.append(Row(f"{verb} --host", "argument --host: invalid choice: 'plan9'", (verb, "--host", "plan9")))
    return rows


def _options() -> Iterator[tuple[str, argparse.Action]]:
    """(verb, action) for each option and positional of the parser: verb '' for the global ones;
    each verb once (an alias shares its verb's parser)."""
    from ladle.cli import app

    top = app._parser([])
    seen: set[int] = set()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield "", action
            for verb, parser in action.choices.items():
                if id(parser) not in seen:
                    seen.add(id(parser))
                    yield from ((verb, a) for a in parser._actions)
        else:
            yield "", action


def _key(verb: str, action: argparse.Action) -> str:
    name = action.option_strings[0] if action.option_strings else action.dest
    return f"{verb} {name}".strip()


ALL_ROWS = ROWS + _flag_rows()


def _id(row: Row) -> str:
    text = " ".join(a if len(a) < 30 else a[:12] + "..." for a in row.argv)
    return text.encode("unicode_escape").decode() or "(nothing)"


def test_the_table_covers_every_option() -> None:
    """Every option of every verb has a row or a reason; every verb and alias has a row; every row
    names an option that exists."""
    from ladle.cli import app

    keys = {_key(verb, a) for verb, a in _options()}
    covered = {row.covers for row in ALL_ROWS}
    for verb, action in _options():
        name = action.option_strings[0] if action.option_strings else action.dest
        if name in NOT_APPLICABLE:
            continue
        assert _key(verb, action) in covered, f"no bad-input row for {_key(verb, action)}"
    verbs = {c.split()[0] for c in covered}
    assert verbs >= app.VERBS, f"verbs without a row: {sorted(app.VERBS - verbs)}"
    assert not {c for c in covered if c not in keys and c not in app.VERBS}, "rows for options that do not exist"
    assert len({_id(row) for row in ALL_ROWS}) == len(ALL_ROWS), "two rows are the same command"


class World:
    """The module's state root and host paths, and what a user could see change in them."""

    def __init__(self, base: Path) -> None:
        self.cli = Ladle(base / "root")
        self.host = base / "host"
        self.host.mkdir()
        (self.host / "dir").mkdir()
        (self.host / "file").write_text("a file\n")
        os.mkfifo(self.host / "fifo")
        (self.host / "empty.tar").write_bytes(b"")
        (self.host / "empty\n.tar").write_bytes(b"")
        (self.host / "random.tar").write_bytes(bytes(range(256)) * 64)
        (self.host / "truncated.tar.gz").write_bytes(gzip.compress(b"x" * 100000)[:200])
        for name, text in CONTAINERFILES.items():
            (self.host / name).write_text(text)
        files = {"file": "file", "dir": "dir", "fifo": "fifo", "missing": "missing", "newline": "two\nlines",
                 "empty": "empty.tar", "empty_newline": "empty\n.tar", "random": "random.tar",
                 "truncated": "truncated.tar.gz"} | {name: name for name in CONTAINERFILES}
        self.paths = {name: str(self.host / file) for name, file in files.items()} | {"long": "/" + "x/" * 2100}

    def fill(self, text: str) -> str:
        for name, path in self.paths.items():
            text = text.replace("{" + name + "}", path)
        return text

    def run(self, argv: tuple[str, ...], **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LADLE, "--root", str(self.cli.root), *(self.fill(a) for a in argv)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30,
                              env={**os.environ, "LADLE_LOCK_TIMEOUT": "5", **env})

    def state(self) -> tuple[dict[str, list[str]], list[tuple[str, ...]]]:
        """The database's rows, the files, and whether each running pot's command is alive (its
        run's row changes only once the monitor sees it end)."""
        db = sqlite3.connect(f"file:{self.cli.root}/ladle.db?mode=ro", uri=True)
        try:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            rows = {t: sorted(repr(row) for row in db.execute(f"SELECT * FROM {t}")) for t in tables
                    if t != "sqlite_sequence"}  # the last id of each table: a counter, not state
            running = db.execute("SELECT pot, main_pid FROM runs WHERE state = 'running'").fetchall()
        finally:
            db.close()
        alive = [("alive", pot, str(os.path.exists(f"/proc/{pid}"))) for pot, pid in sorted(running)]
        return rows, _files(self.cli.root) + _files(self.host) + alive


# Files that change without a change of state: the database (compared by its rows), the lock files
# (one per name a command locked, kept: removing a lock file races with its next user), the monitor's
# own log, socket and lock.
_VOLATILE = ("ladle.db", "ladle.db-wal", "ladle.db-shm", "locks", "logs/monitor.log", "run/monitor.sock",
             "run/keeper.lock")


def _files(top: Path) -> list[tuple[str, ...]]:
    """Every entry under `top` (not crossing into another file system: a running pot's mounts),
    with its type, mode and, for a file, its size and modification time."""
    out = []
    dev = top.stat().st_dev
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            if rel in _VOLATILE:
                continue
            st = os.lstat(path)
            extra = (str(st.st_size), str(st.st_mtime_ns)) if stat.S_ISREG(st.st_mode) else ()
            out.append((str(top.name), rel, oct(st.st_mode), *extra))
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev
                       and os.path.relpath(os.path.join(dirpath, d), top) not in _VOLATILE]
    return sorted(out)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("bad"))
    cli = w.cli
    cli("init")
    cli("create-base", "-r", "busybox")
    cli("create-fscomp", "-f", "fs1")
    cli("snapshot", "-f", "fs1", "-n", "s1")
    cli("create", "-p", "p1", "-b", "busybox", "-c", "sleep 1000")
    cli("add-fscomp", "-p", "p1", "-f", "fs1", "-m", "/data")
    cli("snapshot", "-p", "p1", "-n", "s1")
    cli("start", "p1")  # once: its tree then has its mountpoints and overlayfs's work directory
    cli("stop", "p1")
    cli("create", "-p", "p2", "-b", "busybox", "-l", "2", "-P", "p1")
    cli("create", "-p", "up", "-b", "busybox", "-c", "sleep 1000")
    cli("start", "up")
    cli("create-private-bridge", "-B", "br1", "-S", "5")
    _lease(str(cli.root), "up", "br1")
    cli("create", "-p", "web", "-b", "busybox", "-N", "public-bridge", "-i", "10.192.0.2")
    cli("export-ports", "-p", "web", "-e", "80:8080")
    cli("create-private-bridge", "-B", "full", "-S", "1")
    cli("create", "-p", "onfull", "-b", "busybox", "-N", "private-bridge", "-B", "full")
    cli("create", "-p", "al", "-b", "busybox", "-N", "alias", "-i", "lo|192.0.2.10")
    for pot in ("web", "onfull", "al"):
        cli("snapshot", "-p", pot)
    yield w
    for pot in ("up", "p2", "p1", "web", "onfull", "al"):
        cli("destroy", "-p", pot, "-F", check=False)
    cli("destroy", "-f", "fs1", check=False)
    cli("destroy", "-b", "busybox", "-r", "-F", check=False)


def _lease(root: str, pot: str, network: str) -> None:
    """Lease `pot` an address (as the bridge network types will at create)."""
    from ladle import Client
    from ladle.engine import networks

    with Client(root) as client:
        eng = client._engine(recover=False)
        eng.execute("lease", f"pot:{pot}", [networks.lease(eng, pot, network, 4)])


def _params() -> list[object]:
    return [pytest.param(row, id=_id(row), marks=[pytest.mark.xfail(strict=True, reason=row.bug)] if row.bug else [])
            for row in ALL_ROWS]


@pytest.mark.parametrize("row", _params())
def test_bad_input_is_one_line_and_changes_nothing(world: World, row: Row) -> None:
    before = world.state()
    proc = world.run(row.argv)
    lines = proc.stderr.splitlines()
    assert proc.returncode in (1, 2), f"exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert len(lines) == 1 and lines[0].startswith("ladle: "), f"not one line:\n{proc.stderr}"
    assert world.fill(row.says) in lines[0]
    assert proc.stdout == ""
    after = world.state()
    changed = {t: (sorted(set(before[0][t]) - set(rows)), sorted(set(rows) - set(before[0][t])))
               for t, rows in after[0].items() if rows != before[0].get(t)}
    assert not changed, f"database rows changed (gone, new): {changed}"
    assert after[1] == before[1], (f"files changed: gone {sorted(set(before[1]) - set(after[1]))}, "
                                   f"new {sorted(set(after[1]) - set(before[1]))}")



def test_help_still_prints_the_usage_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """The one exception to 'one line, non-zero': -h/--help, of ladle and of every verb."""
    from ladle.cli import app

    for argv in (["--help"], *([verb, "-h"] for verb in sorted(app.VERBS))):
        with pytest.raises(SystemExit) as exit_:
            app.run(argv)
        out = capsys.readouterr()
        assert exit_.value.code == 0 and out.out.startswith("usage: ladle") and out.err == "", argv


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e400"])
def test_a_bad_lock_timeout_in_the_environment_is_one_line(world: World, value: str) -> None:
    before = world.state()
    proc = world.run(("set-cmd", "-p", "p1", "-c", "true"), LADLE_LOCK_TIMEOUT=value)
    assert proc.returncode == 2
    assert proc.stderr == f"ladle: LADLE_LOCK_TIMEOUT takes seconds from 0 to 86400, not {value!r}\n"
    assert world.state() == before


def test_a_bad_monitor_idle_time_is_one_line_at_once(tmp_path: Path) -> None:
    """The command that would start the monitor says so, rather than a monitor failing to start."""
    cli = Ladle(tmp_path / "root")
    cli("init")
    cli("create-base", "-r", "busybox")
    cli("create", "-p", "a", "-b", "busybox", "-c", "sleep 1000")
    proc = subprocess.run([*LADLE, "--root", str(cli.root), "start", "a"], capture_output=True, text=True,
                          timeout=20, env={**os.environ, "LADLE_MONITOR_IDLE": "soon"})
    assert proc.returncode == 2
    assert proc.stderr == "ladle: LADLE_MONITOR_IDLE takes seconds from 0 to 86400, not 'soon'\n"
    assert "stopped" in cli("ls").stdout

