"""Warnings and notices for whoever uses the library, on the standard `ladle` logger.

`logging` is imported on the first message, not before: importing it costs about 5 ms, more than
a whole `ladle ls` does otherwise, and most commands never warn. A presenter (the CLI) may set
`to_presenter` to show the messages itself, without importing logging at all.
"""

from __future__ import annotations

from collections.abc import Callable

# (level, message) -> None; the CLI's one-line printer, when the CLI runs
to_presenter: Callable[[str, str], None] | None = None


def warning(message: str) -> None:
    _emit("warning", message)


def info(message: str) -> None:
    _emit("info", message)


def _emit(level: str, message: str) -> None:
    if to_presenter is not None:
        to_presenter(level, message)
        return
    import logging

    getattr(logging.getLogger("ladle"), level)("%s", message)
