"""Verbs that run pots: start, stop, exec, term, logs, run, last-run-stats."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import ladle
from ladle.cli.common import Verbs, change, net_args, pot_arg, pot_name, verb
from ladle.cli.output import show_change


def register(verbs: Verbs) -> None:
    p = verb(verbs, "start", _start, "start a pot; returns once its command runs, or fails with the reason. "
             "A non-persistent pot runs in the foreground, as pot's: its output here, exit 125 if its command "
             "fails (last-run-stats has its code)", changes=True)
    pot_arg(p)
    p.add_argument("-d", dest="detach", action="store_true",
                   help="a non-persistent pot too: return once its command runs")

    p = verb(verbs, "stop", change(lambda c, a: c.stop(pot_name(a), exited=a.exited)),
             "stop a pot: SIGTERM, then SIGKILL after its stop_timeout; then clean up. Final: a restart "
             "its policy had pending is cancelled", changes=True)
    pot_arg(p)
    p.add_argument("--exited", action="store_true",
                   help="what the monitor runs when a pot ended by itself: leaves its policy's restart")

    p = verb(verbs, "exec", _exec, "run a command inside a running pot; exits with its exit code", changes=True)
    p.add_argument("-p", dest="pot", metavar="NAME")
    p.add_argument("-t", dest="tty", action="store_true", help="allocate a terminal")
    p.add_argument("-e", dest="env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment (repeatable)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="[NAME] [--] COMMAND [ARG]...")

    p = verb(verbs, "term", _term, "open an interactive shell in a running pot")
    pot_arg(p)

    p = verb(verbs, "logs", _logs, "show the main process's stdout and stderr")
    pot_arg(p)
    p.add_argument("-f", dest="follow", action="store_true", help="keep printing new output until the pot stops")

    p = verb(verbs, "signal", change(lambda c, a: c.signal(pot_name(a), a.signal)),
             "send a signal to a running pot's command (pot's signal; default TERM)")
    pot_arg(p)
    p.add_argument("-s", dest="signal", default="TERM", metavar="SIGNAL", help="a name (HUP, SIGUSR1) or number")

    p = verb(verbs, "wait", _wait, "wait until a pot's command exits, and print its exit code (Docker's wait)")
    pot_arg(p)

    p = verb(verbs, "last-run-stats", _last_run_stats,
             "how the pot's command last ended, as pot prints it: {\"ExitCode\": N}")
    pot_arg(p)

    p = verb(verbs, "run", _run, "create a non-persistent pot on BASE, run COMMAND attached, exit with its code; "
             "a name that is no local base is an image (pulled when missing): its command runs, ARGs replacing its "
             "Cmd", changes=True)
    p.add_argument("--rm", dest="remove", action="store_true", help="destroy the pot when its command exits")
    p.add_argument("-p", "--name", dest="name", metavar="NAME", help="pot name (default: run-<random>)")
    p.add_argument("-d", "--detach", dest="detach", action="store_true",
                   help="start in the background and print the name")
    net_args(p)
    p.add_argument("--dns", dest="dns", action="append", metavar="SERVER",
                   help="a DNS server for its /etc/resolv.conf (repeatable; default: the host's)")
    p.add_argument("-e", dest="ports", action="append", metavar="PORT[:HOSTPORT][/PROTO]",
                   help="export the pot's PORT on HOSTPORT of the host (repeatable; bridge networks)")
    p.add_argument("-P", "--publish-all", dest="publish_all", action="store_true",
                   help="export each of the image's ExposedPorts not given by -e on the lowest free host port")
    p.add_argument("--entrypoint", dest="entrypoint", metavar="PROGRAM",
                   help="an image's program to run instead of its Entrypoint (its Cmd is dropped)")
    p.add_argument("--insecure", action="store_true", help="pull the image over plain HTTP from a remote registry")
    p.add_argument("base", metavar="BASE|IMAGE")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="[--] COMMAND [ARG]...")


def _net(args: argparse.Namespace) -> dict[str, Any]:
    return {"network": args.network, "addresses": args.addresses, "bridge": args.bridge, "stack": args.stack,
            "dns": args.dns, "ports": args.ports, "entrypoint": args.entrypoint, "insecure": args.insecure,
            "publish_all": args.publish_all}


def _command(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ladle.UsageError(f"invalid environment entry {pair!r}: expected KEY=value")
        env[key] = value
    return env


def _exec(client: ladle.Client, args: argparse.Namespace) -> int:
    argv = _command(list(args.args))
    pot = args.pot
    if pot is None and argv:
        pot = argv.pop(0)
        argv = _command(argv)
    if pot is None:
        raise ladle.UsageError("no pot given: use NAME or -p NAME")
    if client.dry_run:
        print("\n".join(client.exec_plan(pot, argv, tty=args.tty)))
        return 0
    return client.exec(pot, argv, tty=args.tty, env=_env(args.env))


def _term(client: ladle.Client, args: argparse.Namespace) -> int:
    return client.exec(pot_name(args), ["/bin/sh"], tty=sys.stdin.isatty())


def _logs(client: ladle.Client, args: argparse.Namespace) -> None:
    out = sys.stdout.buffer
    for chunk in client.logs(pot_name(args), follow=args.follow):
        out.write(chunk)
        if args.follow:
            out.flush()
    out.flush()


def _wait(client: ladle.Client, args: argparse.Namespace) -> None:
    code = client.wait(pot_name(args))
    print("" if code is None else code)


def _last_run_stats(client: ladle.Client, args: argparse.Namespace) -> None:
    print(json.dumps(client.last_run_stats(pot_name(args)).pot_json()))


def _start(client: ladle.Client, args: argparse.Namespace) -> int:
    name = pot_name(args)
    if args.detach or client.get_attr(name, "persistent") == "YES":  # one row, not all of `info`
        show_change(client.start(name))
        return 0
    result = client.start_attached(name, stdio=(0, 1, 2))
    if client.dry_run:
        print("\n".join(result.commands))
    return 0 if result.exit_code == 0 else 125


def _run(client: ladle.Client, args: argparse.Namespace) -> int:
    argv = _command(list(args.args))
    if args.detach:
        change = client.run_detached(args.base, argv, name=args.name, rm=args.remove, **_net(args))
        show_change(change)
        return 0
    result = client.run(args.base, argv, name=args.name, rm=args.remove, stdio=(0, 1, 2), **_net(args))
    if client.dry_run:
        print("\n".join(result.commands))
    return result.exit_code
