"""What `ls` and `info` show of pots: read only, so these commands load no plan machinery."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ladle.engine import runs
from ladle.engine.core import Engine

if TYPE_CHECKING:
    from ladle._models import Pot, PotInfo


def list_pots(eng: Engine) -> list[Pot]:
    from ladle._models import Pot

    recorded = {r["pot"]: r for r in eng.store.all("runs")}
    rows = eng.store.all("pots", order="name")
    statuses = runs.statuses(eng, [recorded.get(r["name"]) for r in rows])
    return [Pot(name=r["name"], status=status, base=r["base"], type=r["type"], level=r["level"],
                network=r["network"]) for r, status in zip(rows, statuses, strict=True)]


def info(eng: Engine, name: str) -> PotInfo:
    from ladle._models import MountPoint, PotInfo, Run, Storage

    pot = eng.pot(name)
    run = eng.store.get("runs", pot=name)
    mounts = [MountPoint(m["mountpoint"], m["kind"], m["source"], bool(m["ro"]))
              for m in eng.store.all("pot_mounts", order="seq", pot=name)]
    layer = eng.snap.info(pot["layer"])
    return PotInfo(
        **{k: pot[k] for k in ("name", "type", "level", "base", "potbase", "cmd", "network")},
        status=runs.status(eng, run),
        persistent=pot["attrs"].get("persistent") == "YES",
        env=pot["env"], attrs=pot["attrs"], mounts=mounts,
        storage=Storage(eng.snap.name, pot["layer"], eng.snap.path(pot["layer"]), layer.parent, layer.origin),
        snapshots=eng.snap.snapshots(pot["layer"]) if pot["layer"] == f"pots/{name}" else [],
        run=Run(**{k: run[k] for k in Run.__dataclass_fields__}) if run else None,
        log=os.path.join(eng.root, "logs", f"{name}.log"),
    )
