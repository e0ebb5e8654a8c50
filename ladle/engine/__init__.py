"""The engine: verbs as functions over an `Engine`, which turns state into plans for a host."""

from ladle.engine.core import Engine

__all__ = ["Engine"]
