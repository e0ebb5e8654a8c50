"""What `ls` and `info` show of pots: read only, so these commands load no plan machinery."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ladle.engine import runs
from ladle.engine.core import Engine

if TYPE_CHECKING:
    from ladle._models import Pot, PotInfo


def list_pots(eng: Engine) -> list[Pot]:
    from ladle._models import Export, Pot

    recorded = {r["pot"]: r for r in eng.store.all("runs")}
    rows = eng.store.all("pots", order="name")
    statuses = runs.statuses(eng, [recorded.get(r["name"]) for r in rows])
    held: dict[str, list[str]] = {}
    for x in eng.store.all("leases", order="family, address"):
        held.setdefault(x["pot"], []).append(x["address"])
    for r in rows:
        if r["network"] == "alias":
            held[r["name"]] = [a["address"] for a in json.loads(r["net"]).get("aliases", [])]
    exported: dict[str, list[str]] = {}
    for x in eng.store.all("exports", order="host_port, proto"):
        exported.setdefault(x["pot"], []).append(Export(x["proto"], x["pot_port"], x["host_port"]).text)
    return [Pot(name=r["name"], status=status, base=r["base"], type=r["type"], level=r["level"],
                network=r["network"], addresses=held.get(r["name"], []), ports=exported.get(r["name"], []),
                health=_health(recorded.get(r["name"]), status))
            for r, status in zip(rows, statuses, strict=True)]


def _health(run: dict[str, Any] | None, status: str) -> str | None:
    """A running pot's health, as its monitor last recorded it."""
    return str(run["health"]) if run and status == "running" and run.get("health") else None


def info(eng: Engine, name: str) -> PotInfo:
    from ladle._models import Export, MountPoint, PotInfo, Run, Storage
    from ladle.engine import netspec, potnet

    pot = eng.pot(name)
    run = eng.store.get("runs", pot=name)
    mounts = [MountPoint(m["mountpoint"], m["kind"], m["source"], bool(m["ro"]))
              for m in eng.store.all("pot_mounts", order="seq", pot=name)]
    layer = eng.snap.info(pot["layer"])
    status = runs.status(eng, run)
    return PotInfo(
        **{k: pot[k] for k in ("name", "type", "level", "base", "potbase", "cmd", "network")},
        status=status,
        persistent=pot["attrs"].get("persistent") == "YES",
        env=pot["env"], attrs=pot["attrs"], mounts=mounts,
        storage=Storage(eng.snap.name, pot["layer"], eng.snap.path(pot["layer"]), layer.parent, layer.origin),
        snapshots=eng.snap.snapshots(pot["layer"]) if pot["layer"] == f"pots/{name}" else [],
        run=Run(**{k: run[k] for k in Run.__dataclass_fields__}) if run else None,
        log=os.path.join(eng.root, "logs", f"{name}.log"),
        stack=potnet.stack_of(eng, pot), network_name=potnet.network_of(pot),
        bridge=netspec.bridge(eng, network) if (network := potnet.network_of(pot)) else None,
        addresses=[a["address"] for _, a in sorted(netspec.addresses(eng, pot).items())]
        + [a["address"] for a in pot["net"].get("aliases", [])],
        aliases=[f"{a['interface']}|{a['address']}" for a in pot["net"].get("aliases", [])],
        ports=[Export(**p) for p in netspec.ports(eng, name)],
        hosts=[f"{host}:{ip}" for host, ip in pot["net"].get("hosts", [])],
        dns=list(pot["net"].get("dns", [])),
        health=_health(run, status), healthcheck=pot["life"].get("health"),
        restart=pot["attrs"].get("restart", "no"), restarts=int((run or {}).get("restarts") or 0),
        depends=list(pot["life"].get("depends", [])), hooks=dict(pot["life"].get("hooks", {})),
        image=dict(pot["image"]),
    )
