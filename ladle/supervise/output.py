"""A pot's output in the monitor: its FIFOs read without blocking, copied into its log and, for an
attached `run`, to the caller's pipes (sinks), which are written without ever blocking either.

The command holds its FIFO open for reading and writing (so it never gets SIGPIPE), and the keeper
holds a descriptor of it too (so what it writes while no monitor runs is kept for the next one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import stat
from collections.abc import Callable

from ladle.platform import write_all
from ladle.supervise.records import PotState, Sink

SINK_LIMIT = 4 << 20   # bytes buffered for a slow attached client before it is dropped
PIPE_SIZE = 1 << 20    # FIFO capacity while no monitor reads (F_SETPIPE_SZ, Linux)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
STREAMS = ((1, "out.fifo"), (2, "err.fifo"))

Hold = Callable[[str, "int | None"], None]


class Output:
    def __init__(self, sel: selectors.BaseSelector, hold: Hold, flushed: Callable[[PotState], None]) -> None:
        self.sel = sel
        self.hold = hold  # ask the keeper to hold (fd) or drop (None) a FIFO descriptor
        self.flushed = flushed  # called when an attached client has got everything

    def open(self, pot: PotState, log_path: str, run_dir: str, split: bool) -> list[int]:
        """The log, and the FIFOs: read ends for us, read-write ends (returned) for the command's
        stdout and stderr. Both go into one FIFO (so the log keeps their order) unless `split`
        (an attached `run`, whose caller gets stdout and stderr apart)."""
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        pot.log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        ends: list[int] = []
        for n, name in STREAMS:
            path = os.path.join(run_dir, name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if n == 2 and not split:
                ends.append(ends[0])
                break
            os.mkfifo(path, 0o600)
            r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            ends.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            with contextlib.suppress(OSError):
                fcntl.fcntl(r, _F_SETPIPE_SZ, PIPE_SIZE)
            self._add_fifo(pot, r, n)
        return ends

    def reopen(self, pot: PotState, log_path: str, run_dir: str) -> None:
        """The FIFOs and log of a pot adopted from a monitor that died."""
        for n, name in STREAMS:
            path = os.path.join(run_dir, name)
            if os.path.exists(path) and stat.S_ISFIFO(os.lstat(path).st_mode):
                self._add_fifo(pot, os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), n)
        pot.log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def attach(self, pot: PotState, fds: list[int]) -> None:
        for stream, fd in zip((1, 2), fds, strict=False):
            os.set_blocking(fd, False)
            pot.sinks[stream] = Sink(fd)

    def _add_fifo(self, pot: PotState, fd: int, stream: int) -> None:
        pot.fifos[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, lambda f, m: self._readable(pot, fd))
        self.hold(f"{pot.name}/{stream}", fd)

    def _readable(self, pot: PotState, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._drop_fifo(pot, fd)
            return
        self._deliver(pot, pot.fifos[fd], data)

    def _deliver(self, pot: PotState, stream: int, data: bytes) -> None:
        if pot.log >= 0:
            _write_all(pot.log, data)
        sink = pot.sinks.get(stream)
        if sink is not None and not sink.closing:
            sink.buf.extend(data)
            if len(sink.buf) > SINK_LIMIT:
                self.drop_sink(pot, stream)
            else:
                self._flush(pot, stream)

    def drain(self, pot: PotState) -> None:
        """Everything the FIFOs hold now, without waiting for more."""
        for fd, stream in list(pot.fifos.items()):
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not data:
                    self._drop_fifo(pot, fd)
                    break
                self._deliver(pot, stream, data)

    def _drop_fifo(self, pot: PotState, fd: int) -> None:
        if fd in pot.fifos:
            del pot.fifos[fd]
            self.sel.unregister(fd)
            os.close(fd)

    def _flush(self, pot: PotState, stream: int) -> None:
        sink = pot.sinks[stream]
        try:
            while sink.buf:
                n = os.write(sink.fd, sink.buf[:65536])
                del sink.buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.drop_sink(pot, stream)
            return
        registered = self.sel.get_map().get(sink.fd) is not None
        if sink.buf and not registered:
            self.sel.register(sink.fd, selectors.EVENT_WRITE, lambda f, m: self._flush(pot, stream))
        elif not sink.buf and registered:
            self.sel.unregister(sink.fd)
        if not sink.buf and sink.closing:
            self.drop_sink(pot, stream)

    def drop_sink(self, pot: PotState, stream: int) -> None:
        sink = pot.sinks.pop(stream, None)
        if sink is None:
            return
        if self.sel.get_map().get(sink.fd) is not None:
            self.sel.unregister(sink.fd)
        os.close(sink.fd)
        if not pot.sinks:
            self.flushed(pot)

    def close_sinks(self, pot: PotState) -> None:
        """Deliver what is buffered, then close: the attached client sees EOF after the output."""
        for stream in list(pot.sinks):
            pot.sinks[stream].closing = True
            self._flush(pot, stream)

    def close(self, pot: PotState) -> None:
        """Everything of a pot that is gone (the keeper may let go of its FIFOs too)."""
        self.drain(pot)
        self.close_sinks(pot)
        for fd in list(pot.fifos):
            self._drop_fifo(pot, fd)
        for n, _ in STREAMS:
            self.hold(f"{pot.name}/{n}", None)
        if pot.log >= 0:
            os.close(pot.log)
            pot.log = -1


def _write_all(fd: int, data: bytes) -> None:
    """A log or sink that cannot take more (full disk, closed pipe) loses this data, not the monitor."""
    with contextlib.suppress(OSError):
        write_all(fd, data)
