"""ladle: a container manager for FreeBSD jails that also runs its containers on Linux.

Kept empty on purpose: every CLI start imports this package, so it must cost nothing.
"""

__version__ = "0.1.0"
