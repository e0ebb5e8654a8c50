"""Verbs of a pot's life cycle around its runs: healthchecks, dependencies, hooks, restarts, boot."""

from __future__ import annotations

from ladle.cli.common import Parser, Verbs, change, pot_arg, pot_name, pot_opt, verb


def register(verbs: Verbs) -> None:
    p = verb(verbs, "set-health", change(lambda c, a: c.set_health(
        a.pot, a.cmd, interval=a.interval, timeout=a.timeout, retries=a.retries, start_period=a.start_period,
        remove=a.remove)), "set a pot's healthcheck: a command run in it (status in ls and info)", changes=True)
    pot_opt(p)
    p.add_argument("-c", dest="cmd", metavar="CMD", help="the check, run by /bin/sh in the pot; exit 0 is healthy")
    _duration(p, "--interval", "30s", "between checks")
    _duration(p, "--timeout", "5s", "a check taking longer fails")
    p.add_argument("--retries", default="3", metavar="N", help="failures in a row that make it unhealthy (default 3)")
    _duration(p, "--start-period", "0s", "failures in this time after its start do not count")
    p.add_argument("--remove", action="store_true", help="remove the pot's healthcheck")

    p = verb(verbs, "healthcheck", change(lambda c, a: c.healthcheck(pot_name(a))),
             "run a running pot's healthcheck once: exit 0 if healthy")
    pot_arg(p)

    p = verb(verbs, "add-dep", change(lambda c, a: c.add_dep(a.pot, a.dep)),
             "make a pot depend on another: starting POT starts DEP first (pot's add-dep)", changes=True)
    pot_opt(p)
    p.add_argument("-P", dest="dep", required=True, metavar="DEP")

    p = verb(verbs, "del-dep", change(lambda c, a: c.del_dep(a.pot, a.dep)),
             "remove a dependency added with add-dep", changes=True)
    pot_opt(p)
    p.add_argument("-P", dest="dep", required=True, metavar="DEP")

    p = verb(verbs, "set-hook", change(lambda c, a: c.set_hook(
        a.pot, prestart=a.prestart, poststart=a.poststart, prestop=a.prestop, poststop=a.poststop)),
        "set host scripts run around a pot's start and stop, with _POT_NAME, _POT_IP, ... (pot's set-hook; "
        "'' removes one)", changes=True)
    pot_opt(p)
    p.add_argument("-s", dest="prestart", metavar="SCRIPT", help="before the start; its failure stops the start")
    p.add_argument("-S", dest="poststart", metavar="SCRIPT", help="after the start")
    p.add_argument("-t", dest="prestop", metavar="SCRIPT", help="before the stop")
    p.add_argument("-T", dest="poststop", metavar="SCRIPT", help="after the stop")

    p = verb(verbs, "restart", change(lambda c, a: c.restart(pot_name(a), due=a.due)),
             "stop a pot if it runs and start it again (its restart count starts over)", changes=True)
    pot_arg(p)
    p.add_argument("--due", action="store_true",
                   help="what the monitor runs for a restart policy: only if no stop or start came since")

    p = verb(verbs, "boot", change(lambda c, a: c.boot(stop=a.stop)),
             "start the pots marked start-at-boot, restart=always or unless-stopped, dependencies first "
             "(the rc script's and the systemd unit's command)", changes=True)
    p.add_argument("--stop", action="store_true", help="stop them instead, dependants first (at shutdown)")


def _duration(p: Parser, flag: str, default: str, what: str) -> None:
    """A duration option such as 30s, 500ms or 2m, its default named in its help. It is passed on
    as given: the engine reads it (ladle.supervise.policy.duration), for the library's callers too."""
    p.add_argument(flag, default=default, metavar="DURATION", help=f"{what} (default {default})")
