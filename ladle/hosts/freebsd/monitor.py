"""The monitor's entry point on FreeBSD: the generic monitor with the `jexec` launcher."""

from __future__ import annotations

from ladle.hosts.freebsd.launch import FreeBSDLauncher
from ladle.supervise.monitor import serve


def main(args: list[str]) -> None:
    serve(FreeBSDLauncher(), args)
