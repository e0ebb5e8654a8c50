"""Typed steps: each knows how to render itself as exact commands, apply itself, and undo itself.

A plan is a plain list of steps. Steps are dataclasses holding only JSON values, so the executor
can write them to the intent log and `ladle gc` can rebuild and undo them after a crash.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ladle.errors import HostError, UsageError
from ladle.plan.runner import Runner

if TYPE_CHECKING:
    from ladle.state.store import Store

# Modules that define steps; imported on demand when the intent log names a kind not yet loaded.
STEP_MODULES = (
    "ladle.plan.steps",
    "ladle.state.steps",
    "ladle.storage.dirfs",
    "ladle.storage.zfs",
    "ladle.storage.tarsafe",
    "ladle.hosts.linux.steps",
    "ladle.hosts.linux.live",
    "ladle.hosts.freebsd.steps",
)


@dataclass
class Context:
    """What a step may touch while it applies: the command runner and the state store."""

    runner: Runner
    store: Store | None = None


class Step:
    """One change to the host. Subclasses are dataclasses."""

    registry: ClassVar[dict[str, type[Step]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Step.registry[cls.__name__] = cls

    def render(self) -> list[str]:
        """The exact shell lines this step runs (comments for state-only steps)."""
        raise NotImplementedError

    def apply(self, ctx: Context) -> None:
        raise NotImplementedError

    def inverse(self) -> list[Step]:
        """Steps that undo this one; empty when it cannot or need not be undone."""
        return []

    def to_json(self) -> str:
        return json.dumps({"kind": type(self).__name__, "args": asdict(self)})  # type: ignore[call-overload]

    @staticmethod
    def from_json(text: str) -> Step:
        data = json.loads(text)
        kind = data["kind"]
        for module in STEP_MODULES:
            if kind in Step.registry:
                break
            importlib.import_module(module)
        return Step.registry[kind](**data["args"])


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
    """Remove a directory tree (or file); missing is fine. Cannot be undone, so plans put it last."""

    path: str

    def render(self) -> list[str]:
        return [shlex.join(["rm", "-rf", "--", self.path])]

    def apply(self, ctx: Context) -> None:
        if os.path.islink(self.path) or os.path.isfile(self.path):
            os.unlink(self.path)
        elif os.path.isdir(self.path):
            shutil.rmtree(self.path)


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
        if os.path.lexists(self.dst):
            raise UsageError(f"{self.dst} already exists")
        os.rename(self.src, self.dst)

    def inverse(self) -> list[Step]:
        return [Rename(self.dst, self.src)]
