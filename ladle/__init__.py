"""ladle: a container manager for FreeBSD jails that also runs its containers on Linux.

The public API is what this package exports (`__all__`): `Client`, the dataclasses it returns and
the exceptions it raises. Every other module is private to the package. Names are imported on
first use, so `import ladle` (which every CLI start does) costs nothing::

    import ladle

    c = ladle.Client()                       # LADLE_ROOT, the config file, or the default root
    c.create("web", base="busybox", cmd="httpd -f -p 8080", network="inherit")
    c.start("web")
    print([p.status for p in c.pots()])
    c.stop("web"); c.destroy("web")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "Client": "ladle._client",
    **{name: "ladle._models" for name in ("Base", "Export", "Fscomp", "LastRun", "MountPoint", "Pot",
                                           "PotInfo", "PotStats", "PotSummary", "Process", "Resources", "Run",
                                           "Storage")},
    "Change": "ladle._results", "RunResult": "ladle._results",
    **{name: "ladle.errors" for name in ("Busy", "CommandFailed", "Exists", "HostError", "LadleError",
                                          "NotFound", "StateError", "UsageError")},
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # the names as mypy and IDEs see them (re-exported explicitly)
    from ladle._client import Client as Client
    from ladle._models import Base as Base
    from ladle._models import Export as Export
    from ladle._models import Fscomp as Fscomp
    from ladle._models import LastRun as LastRun
    from ladle._models import MountPoint as MountPoint
    from ladle._models import Pot as Pot
    from ladle._models import PotInfo as PotInfo
    from ladle._models import PotStats as PotStats
    from ladle._models import PotSummary as PotSummary
    from ladle._models import Process as Process
    from ladle._models import Resources as Resources
    from ladle._models import Run as Run
    from ladle._models import Storage as Storage
    from ladle._results import Change as Change
    from ladle._results import RunResult as RunResult
    from ladle.errors import Busy as Busy
    from ladle.errors import CommandFailed as CommandFailed
    from ladle.errors import Exists as Exists
    from ladle.errors import HostError as HostError
    from ladle.errors import LadleError as LadleError
    from ladle.errors import NotFound as NotFound
    from ladle.errors import StateError as StateError
    from ladle.errors import UsageError as UsageError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ladle' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
