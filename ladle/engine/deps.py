"""Dependencies between pots (pot's `add-dep`): a pot's `depends` are started before it, and
waited for until they run (and are healthy, if they have a healthcheck)."""

from __future__ import annotations

import time
from typing import Any

from ladle import names
from ladle.engine.core import Engine
from ladle.errors import NotFound, StateError, UsageError
from ladle.state.steps import put

SLACK = 5.0  # seconds past a dependency's own healthcheck timing before waiting for it fails


def depends(pot: dict[str, Any]) -> list[str]:
    return list(pot["life"].get("depends", []))


def _graph(eng: Engine) -> dict[str, list[str]]:
    import json
    return {r["name"]: list(json.loads(r.get("life") or "{}").get("depends", [])) for r in eng.store.all("pots")}


def _reaches(graph: dict[str, list[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        here = todo.pop()
        if here == goal:
            return True
        if here not in seen:
            seen.add(here)
            todo += graph.get(here, [])
    return False


def add(eng: Engine, name: str, dep: str) -> str:
    names.pot_name(dep)
    if dep == name:
        raise UsageError(f"pot {name} cannot depend on itself")
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        eng.pot(dep)
        if dep in depends(pot):
            raise UsageError(f"pot {name} already depends on {dep}")
        if _reaches(_graph(eng), dep, name):
            raise UsageError(f"pot {dep} depends on {name} already: a dependency cycle is refused")
        life = {**pot["life"], "depends": sorted([*depends(pot), dep])}
        eng.execute("add-dep", f"pot:{name}", [put("pots", {"name": name}, {**pot, "life": life}, pot)])
    return f"pot {name} depends on {dep}"


def delete(eng: Engine, name: str, dep: str) -> str:
    names.pot_name(dep)
    with eng.lock(f"pot-{name}"):
        pot = eng.pot(name)
        if dep not in depends(pot):
            raise NotFound(f"pot {name} does not depend on {dep}")
        life = {**pot["life"], "depends": [d for d in depends(pot) if d != dep]}
        eng.execute("del-dep", f"pot:{name}", [put("pots", {"name": name}, {**pot, "life": life}, pot)])
    return f"pot {name} no longer depends on {dep}"


def dependants(eng: Engine, name: str) -> list[str]:
    """Pots that depend on `name` directly."""
    return sorted(p for p, ds in _graph(eng).items() if name in ds)


def order(eng: Engine, names_: list[str]) -> list[str]:
    """`names_` with everything they depend on, dependencies first (a pot once)."""
    graph = _graph(eng)
    out: list[str] = []

    def visit(n: str, path: tuple[str, ...]) -> None:
        if n in out or n in path:  # a cycle cannot be added; one in an old database is cut here
            return
        for d in graph.get(n, []):
            if d in graph:
                visit(d, (*path, n))
        out.append(n)

    for n in names_:
        visit(n, ())
    return out


def drop_steps(eng: Engine, name: str) -> list[Any]:
    """Steps that drop every edge to `name` (its destroy with -F)."""
    steps = []
    for other in dependants(eng, name):
        pot = eng.pot(other)
        life = {**pot["life"], "depends": [d for d in depends(pot) if d != name]}
        steps.append(put("pots", {"name": other}, {**pot, "life": life}, pot))
    return steps


def rename_steps(eng: Engine, old: str, new: str) -> list[Any]:
    """Steps that point every edge to `old` at `new` (its rename)."""
    steps = []
    for other in dependants(eng, old):
        pot = eng.pot(other)
        life = {**pot["life"], "depends": sorted(new if d == old else d for d in depends(pot))}
        steps.append(put("pots", {"name": other}, {**pot, "life": life}, pot))
    return steps


def wait_ready(eng: Engine, dep: str) -> None:
    """Until the dependency `dep` (started) is healthy, if it has a healthcheck: for as long as
    its check could take to say so (an unhealthy one may still recover)."""
    check = eng.pot(dep)["life"].get("health")
    if not check or eng.dry_run:
        return
    limit = check["start_period"] + (check["interval"] + check["timeout"]) * (check["retries"] + 1) + SLACK
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        run = eng.store.get("runs", pot=dep) or {}
        if run.get("state") != "running":
            raise StateError(f"dependency {dep} stopped before it was healthy")
        if run.get("health") == "healthy":
            return
        time.sleep(0.05)
    health = (eng.store.get("runs", pot=dep) or {}).get("health")
    raise StateError(f"dependency {dep} was not healthy within {limit:.0f}s (it is {health})")
