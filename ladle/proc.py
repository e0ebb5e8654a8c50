"""Process identity that survives pid reuse: a pid plus the time the kernel started it."""

import os


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return _alive_fallback(pid)
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z":  # a zombie has finished its work
        return None
    return int(fields[19])


def _alive_fallback(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


def alive(pid: int | None, started: int | None) -> bool:
    """True if `pid` still names the process that started at `started`."""
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (started is None or now == started)
