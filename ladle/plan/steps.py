"""Typed steps: each knows how to render itself as exact commands, apply itself, and undo itself.

A plan is a plain list of steps. Steps are dataclasses holding only JSON values, so the executor
can write them to the intent log and `ladle gc` can rebuild and undo them after a crash.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ladle.errors import HostError, LadleError, UsageError
from ladle.plan.rmtree import remove_tree
from ladle.plan.runner import Runner

if TYPE_CHECKING:
    from ladle.state.store import Store


class UnknownStep(LadleError):
    """The intent log names a step this ladle does not have (another version, another host)."""


@dataclass
class Context:
    """What a step may touch while it applies: the command runner, the state store, and the
    host's monitor (connected on first use; steps that start or stop processes ask it)."""

    runner: Runner
    store: Store | None = None
    monitor: Callable[[], Any] | None = None
    attach: tuple[int, int] | None = None  # pipes that an attached `run` reads the command's output from


class Step:
    """One change to the host. Subclasses are dataclasses.

    Each subclass registers itself under its kind, ``module:Class``, when its module is imported;
    an intent log entry names its kind, so rebuilding it imports exactly the module that defines it
    and nothing else (a FreeBSD host never imports the Linux driver, and the reverse).
    """

    registry: ClassVar[dict[str, type[Step]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Step.registry[cls.kind()] = cls

    @classmethod
    def kind(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    def render(self) -> list[str]:
        """The exact shell lines this step runs (comments for state-only steps)."""
        raise NotImplementedError

    def apply(self, ctx: Context) -> None:
        raise NotImplementedError

    def inverse(self) -> list[Step]:
        """Steps that undo this one; empty when it cannot or need not be undone."""
        return []

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind(), "args": asdict(self)})  # type: ignore[call-overload]

    @staticmethod
    def from_json(text: str) -> Step:
        """Rebuild a step from the intent log; UnknownStep (one line) if it cannot be."""
        try:
            data = json.loads(text)
            kind, args = str(data["kind"]), dict(data["args"])
        except (ValueError, KeyError, TypeError):
            raise UnknownStep(f"unreadable step in the intent log: {text[:60]!r}") from None
        module, sep, _ = kind.partition(":")
        if kind not in Step.registry and sep and module.startswith("ladle."):
            try:
                importlib.import_module(module)
            except Exception as e:  # not this version's, or another host's (its libc lacks symbols)
                raise UnknownStep(f"step {kind}: cannot load {module} here ({type(e).__name__}: {e})") from None
        cls = Step.registry.get(kind)
        if cls is None:
            raise UnknownStep(f"unknown step {kind!r} in the intent log")
        try:
            return cls(**args)
        except TypeError as e:
            raise UnknownStep(f"step {kind} does not match this ladle: {e}") from None


class Command(Step):
    """A step that is exactly one or more host commands."""

    def argvs(self) -> list[list[str]]:
        raise NotImplementedError

    def render(self) -> list[str]:
        return [shlex.join(a) for a in self.argvs()]

    def apply(self, ctx: Context) -> None:
        for argv in self.argvs():
            ctx.runner.run(argv)


@dataclass
class Cmd(Command):
    """A host command with explicit undo commands; for one-offs that need no type of their own."""

    argv: list[str]
    undo: list[list[str]] = field(default_factory=list)

    def argvs(self) -> list[list[str]]:
        return [self.argv]

    def inverse(self) -> list[Step]:
        return [Cmd(a) for a in self.undo]


@dataclass
class MakeDir(Step):
    """Create a directory that must not exist yet, so that undoing it removes only what we made."""

    path: str
    mode: int = 0o755

    def render(self) -> list[str]:
        return [shlex.join(["mkdir", "-m", f"{self.mode:o}", self.path])]

    def apply(self, ctx: Context) -> None:
        try:
            os.mkdir(self.path, self.mode)
        except FileExistsError:
            raise UsageError(f"{self.path} already exists") from None
        except OSError as e:
            raise HostError(f"cannot create {self.path}: {e.strerror}") from None
        os.chmod(self.path, self.mode)

    def inverse(self) -> list[Step]:
        return [RemoveTree(self.path)]


@dataclass
class RemoveTree(Step):
    """Remove a directory tree (or file); missing is fine. Cannot be undone, so plans put it
    after their `Commit`."""

    path: str

    def render(self) -> list[str]:
        return [shlex.join(["rm", "-rf", "--", self.path])]

    def apply(self, ctx: Context) -> None:
        try:
            remove_tree(self.path)
        except OSError as e:
            raise HostError(f"cannot remove {self.path}: {e.strerror or e}") from None


@dataclass
class Commit(Step):
    """The point of no return of a plan: what comes after it destroys the old version of
    something (a tree set aside, snapshots a rollback drops) and cannot be undone. A plan killed
    after its Commit is finished by recovery, never undone; a failure after it is a warning."""

    what: str = ""

    def render(self) -> list[str]:
        return []

    def apply(self, ctx: Context) -> None:
        pass


@dataclass
class CopyTree(Command):
    """Copy a tree preserving everything (owners, modes, links, special files)."""

    src: str
    dst: str

    def argvs(self) -> list[list[str]]:
        return [["cp", "-a", self.src, self.dst]]

    def inverse(self) -> list[Step]:
        return [RemoveTree(self.dst)]


@dataclass
class WriteFile(Step):
    """Write a small file whole (config, hostname, resolv.conf)."""

    path: str
    content: str
    mode: int = 0o644

    def render(self) -> list[str]:
        return [f"cat > {shlex.quote(self.path)} <<'EOF'", *self.content.rstrip("\n").split("\n"), "EOF"]

    def apply(self, ctx: Context) -> None:
        tmp = f"{self.path}.ladle-tmp"
        with open(tmp, "w") as f:
            f.write(self.content)
        os.chmod(tmp, self.mode)
        os.replace(tmp, self.path)

    def inverse(self) -> list[Step]:
        return [RemoveTree(self.path)]


@dataclass
class Rename(Step):
    """Rename a path; undone by renaming it back."""

    src: str
    dst: str

    def render(self) -> list[str]:
        return [shlex.join(["mv", "--", self.src, self.dst])]

    def apply(self, ctx: Context) -> None:
        if not os.path.lexists(self.src) and os.path.lexists(self.dst):
            return  # done already: a recovery repeats or undoes a rename that a crash interrupted
        if os.path.lexists(self.dst):
            raise UsageError(f"{self.dst} already exists")
        os.rename(self.src, self.dst)

    def inverse(self) -> list[Step]:
        return [Rename(self.dst, self.src)]
