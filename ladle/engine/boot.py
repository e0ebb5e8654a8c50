"""`ladle boot`: what the host's rc script (contrib/rc.d/ladle) or unit (contrib/systemd) runs
at boot and at shutdown.

At boot it starts, dependencies first, every pot with `start-at-boot=YES`, every pot with
`restart=always`, and every `restart=unless-stopped` pot that was not stopped by hand (Docker's
daemon start). `boot --stop` stops those that run, dependants first; an `unless-stopped` one is
recorded as `shutdown`, so the next boot starts it again.
"""

from __future__ import annotations

import json

from ladle import _log
from ladle.engine import deps, lifecycle
from ladle.engine.core import Engine
from ladle.engine.runs import is_running
from ladle.errors import LadleError, StateError

UP_AT_SHUTDOWN = ("running", "restarting", "shutdown")  # an unless-stopped pot not stopped by hand


def chosen(eng: Engine) -> list[str]:
    """The pots boot starts, in the order it starts them."""
    runs = {r["pot"]: r for r in eng.store.all("runs")}
    picked = []
    for row in eng.store.all("pots", order="name"):
        attrs = json.loads(row["attrs"])
        policy = attrs.get("restart", "no")
        last = (runs.get(row["name"]) or {}).get("state")
        if attrs.get("start-at-boot") == "YES" or policy == "always" or (
                policy == "unless-stopped" and last in UP_AT_SHUTDOWN):
            picked.append(row["name"])
    return deps.order(eng, picked)


def boot(eng: Engine, stop: bool = False) -> str:
    order = chosen(eng)
    done, failed = [], []
    for name in reversed(order) if stop else order:
        try:
            if stop:
                if is_running(eng, name):
                    lifecycle.stop(eng, name)
                    _mark_shutdown(eng, name)
                    done.append(name)
            elif not is_running(eng, name):
                lifecycle.start(eng, name)
                done.append(name)
        except LadleError as e:
            _log.warning(str(e))
            failed.append(name)
    if failed:
        raise StateError(f"{'stopped' if stop else 'started'} {', '.join(done) or 'none'}; failed: {', '.join(failed)}")
    if not done:
        return "no pot to stop" if stop else "no pot to start"
    return f"{'stopped' if stop else 'started'} {', '.join(done)}"


def _mark_shutdown(eng: Engine, name: str) -> None:
    from ladle.state.steps import put

    with eng.lock(f"pot-{name}"):
        row = eng.store.get("runs", pot=name)
        if not row or eng.pot(name)["attrs"].get("restart") != "unless-stopped" or eng.dry_run:
            return
        eng.execute("boot", f"pot:{name}", [put("runs", {"pot": name}, {**row, "state": "shutdown"}, row)],
                    on_crash="finish")
