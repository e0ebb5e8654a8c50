"""Port exports: parsing `-e PORT[:HOSTPORT][/tcp|/udp]`, and the state steps that record them.

A host port of a protocol belongs to one pot at most (the `exports` table's key). A port left to
ladle is chosen as pot does, the lowest of 1024-9999 that no pot exports (nor anything on the
host listens on now), inside the write transaction that records it: two commands exporting at
once never get the same one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ladle.errors import Exists, HostError, UsageError
from ladle.plan.steps import Context, Step

if TYPE_CHECKING:
    from ladle.state.store import Store

PROTOS = ("tcp", "udp")
AUTO_PORTS = range(1024, 10000)  # pot's range for a host port it picks


def parse(text: str) -> tuple[str, int, int | None]:
    """(proto, pot port, host port or None) of `PORT[:HOSTPORT][/tcp|/udp]`."""
    body, slash, proto = text.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOS:
        raise UsageError(f"-e {text!r}: the protocol is tcp or udp, not {proto!r}")
    pot, colon, host = body.partition(":")
    return proto, _port(text, pot), _port(text, host) if colon else None


def _port(text: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise UsageError(f"-e {text!r}: a port is a number from 1 to 65535, not {value!r}")
    return int(value)


def _listening(proto: str, port: int) -> bool:
    """Whether something on this host holds `port` now (a bind to it fails)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def _store(ctx: Context) -> Store:
    if ctx.store is None:
        raise HostError("no state store")
    return ctx.store


@dataclass
class ExportTake(Step):
    """Export `host_port` (None: the lowest free one of AUTO_PORTS) of `proto` to the pot's
    `pot_port`; refused if another pot exports it."""

    pot: str
    proto: str
    pot_port: int
    host_port: int | None = None

    def render(self) -> list[str]:
        host = f"host port {self.host_port}/{self.proto}" if self.host_port else \
            f"the lowest free {self.proto} host port of 1024-9999"
        return [f"# state: export {host} to port {self.pot_port} of pot {self.pot}"]

    def apply(self, ctx: Context) -> None:
        store = _store(ctx)
        with store.transaction():
            store.insert("exports", {"host_port": self.pick(store), "proto": self.proto, "pot": self.pot,
                                     "pot_port": self.pot_port})

    def pick(self, store: Store) -> int:
        """The host port, from what the store holds now (inside the caller's transaction)."""
        held = {(r["host_port"], r["proto"]): r["pot"] for r in store.all("exports")}
        if self.host_port is not None:
            owner = held.get((self.host_port, self.proto))
            if owner is not None and owner != self.pot:
                raise Exists(f"host port {self.host_port}/{self.proto} is already exported by pot {owner}")
            return self.host_port
        taken = {port for port, _ in held}
        for port in AUTO_PORTS:
            if port not in taken and not _listening(self.proto, port):
                self.host_port = port  # what the undo gives back
                return port
        raise UsageError(f"no free {self.proto} port left in 1024-9999 to export")

    def inverse(self) -> list[Step]:
        return [ExportDrop(self.pot, self.proto, self.pot_port, self.host_port)]


@dataclass
class ExportDrop(Step):
    """Stop exporting `host_port` of `proto` (None, the undo of a take that chose it, as the
    intent log holds it: the pot's exports of `pot_port`); undo: export it again."""

    pot: str
    proto: str
    pot_port: int
    host_port: int | None

    def render(self) -> list[str]:
        return [f"# state: stop exporting host port {self.host_port}/{self.proto} of pot {self.pot}"]

    def apply(self, ctx: Context) -> None:
        key = {"host_port": self.host_port} if self.host_port is not None else {"pot_port": self.pot_port}
        _store(ctx).delete("exports", proto=self.proto, pot=self.pot, **key)

    def inverse(self) -> list[Step]:
        return [ExportTake(self.pot, self.proto, self.pot_port, self.host_port)] if self.host_port else []
