"""The monitor's entry point on Linux: the generic monitor with the Linux launcher."""

from __future__ import annotations

from ladle.hosts.linux.launch import LinuxLauncher
from ladle.supervise.monitor import serve


def main(args: list[str]) -> None:
    serve(LinuxLauncher(), args)
