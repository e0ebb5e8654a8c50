"""The interface each operating system implements (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable


class ExitWatcher:
    """Tells when watched processes exit. Its `fileno()` becomes readable when one has; `exited()`
    then returns their pids. Works for any process, child or not, without polling."""

    def fileno(self) -> int:
        raise NotImplementedError

    def add(self, pid: int) -> bool:
        """Watch `pid`; False if it has already exited."""
        raise NotImplementedError

    def discard(self, pid: int) -> None:
        raise NotImplementedError

    def exited(self) -> list[int]:
        """The watched pids that have exited since the last call (they are no longer watched)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class FileWatcher:
    """Tells when a file may have grown, been truncated or appeared. Its `fileno()` becomes
    readable then; `clear()` consumes the notification."""

    def fileno(self) -> int:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Platform:
    """One operating system's primitives."""

    name = ""

    def start_time(self, pid: int, zombies: bool = False) -> int | None:
        """When `pid` started; None if it is gone, or a zombie and not `zombies`."""
        raise NotImplementedError

    def exit_watcher(self) -> ExitWatcher:
        raise NotImplementedError

    def file_watcher(self, path: str) -> FileWatcher:
        """Watch `path` (which may not exist yet: then its directory is watched for it)."""
        raise NotImplementedError

    def acquire_reaper(self) -> None:
        """Make orphaned descendants of this process its children, so it can reap them."""
        raise NotImplementedError

    def set_title(self, title: str) -> None:
        """Show `title` for this process in ps(1)."""
        raise NotImplementedError

    def jail_attacher(self, name: str) -> Callable[[], None]:
        """FreeBSD: a call that moves the calling process into jail `name` (looked up now, so
        that the call is only jail_attach(2), safe in a forked child)."""
        raise NotImplementedError(f"{self.name} has no jails")
