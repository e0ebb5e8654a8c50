"""The supervisor's last act: record how the pot ended, from a fresh interpreter.

A forked supervisor must not use SQLite: the library keeps per-process state about open database
files, and the copy inherited from the parent refers to descriptors the daemon has closed
("locking protocol" errors, or worse). So the supervisor execs this module, which replaces it with
a clean interpreter under the same pid (whoever waits for the supervisor still waits for the
record), writes one row and exits.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

_CODE = "import sys; sys.path[:0] = [sys.argv.pop(1)]; from ladle.supervise.record import main; main()"


def exec_recorder(store_path: str, pot: str, row: dict[str, Any]) -> NoReturn:
    """Become `python -S -c <record>`: site-packages are skipped, ladle is found from here."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.execv(sys.executable, [sys.executable, "-S", "-c", _CODE, package_root, store_path, pot,
                              json.dumps(row), str(os.getpid())])


def main() -> None:
    from ladle.supervise import runs

    store_path, pot, row, supervisor = sys.argv[1:5]
    if not os.path.exists(store_path):  # the state root is gone: never create a stray database
        return
    runs.write(store_path, pot, json.loads(row), only_if_supervisor=int(supervisor))
