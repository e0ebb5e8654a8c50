"""Verbs for images: pull, push, login, the list, tag, save, load, rmi, commit and prune."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ladle
from ladle.cli.common import Refused, Verbs, change, pot_opt, verb
from ladle.cli.output import as_json, table

Bar = Callable[[str, int, int], None]


def register(verbs: Verbs) -> None:
    p = verb(verbs, "pull", _pull, "pull an image from a registry (from an index, this host's platform)")
    p.add_argument("ref", metavar="REF", help="[REGISTRY/]NAME[:TAG] or [REGISTRY/]NAME@sha256:DIGEST")
    _transfer(p)

    p = verb(verbs, "push", _push, "push an image of the store to its registry, or to another name")
    p.add_argument("ref", metavar="REF", help="an image in the store (see 'ladle images')")
    p.add_argument("dest", nargs="?", metavar="DEST", help="where to push it (default: REF)")
    p.add_argument("--chunk-size", dest="chunk", type=int, default=16 << 20, metavar="BYTES",
                   help="upload blobs larger than this in chunks of it (default 16 MiB; 0: in one request)")
    _transfer(p)

    p = verb(verbs, "login", _login, "check credentials for a registry and keep them in the auth file "
             "($REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json or ~/.config/containers/auth.json)")
    p.add_argument("registry", metavar="REGISTRY", help="host[:port]")
    p.add_argument("-u", "--username", dest="user", required=True, metavar="USER")
    p.add_argument("--password-stdin", dest="stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP and unverified TLS")

    p = verb(verbs, "images", _images, "list the images in the store")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verb(verbs, "rmi", change(lambda c, a: c.rmi(a.ref, force=a.force)),
             "remove an image (and the blobs only it used)")
    p.add_argument("-f", "--force", action="store_true",
                   help="also an image pots were made from (they keep their layers)")
    p.add_argument("ref", metavar="REF", help="NAME[:TAG], NAME@DIGEST or DIGEST")

    p = verb(verbs, "commit", change(lambda c, a: c.commit(a.pot, a.ref)),
             "store a stopped pot's changes as a new layer on its image (or base) under image REF", changes=True)
    pot_opt(p)
    p.add_argument("ref", metavar="REF", help="[REGISTRY/]NAME[:TAG] of the new image")

    p = verb(verbs, "build", _build, "build an image from a Containerfile (FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR,"
             " USER, CMD, ENTRYPOINT, EXPOSE, VOLUME, LABEL, STOPSIGNAL), each step cached")
    p.add_argument("-f", "--file", dest="file", default=None, metavar="FILE",
                   help="the Containerfile (default: DIR/Containerfile, else DIR/Dockerfile)")
    p.add_argument("-t", "--tag", dest="tag", required=True, metavar="REF", help="[REGISTRY/]NAME[:TAG] of the image")
    p.add_argument("--build-arg", dest="build_args", action="append", default=[], metavar="NAME=VALUE",
                   help="a value for an ARG (repeatable)")
    p.add_argument("--network", dest="network", default="none", metavar="none|inherit",
                   help="the network of RUN steps (default none)")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", help="make every step again")
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP and unverified TLS pulling FROM's image")
    p.add_argument("context", nargs="?", default=".", metavar="DIR", help="the build context (default: .)")

    p = verb(verbs, "tag", change(lambda c, a: c.tag(a.source, a.dest)), "give an image of the store another name")
    p.add_argument("source", metavar="SRC", help="NAME[:TAG], NAME@DIGEST or DIGEST")
    p.add_argument("dest", metavar="DST", help="the new [REGISTRY/]NAME[:TAG]")

    p = verb(verbs, "save", change(lambda c, a: c.save(a.ref, a.output)),
             "write an image to an OCI layout archive (skopeo's oci-archive:FILE)")
    p.add_argument("ref", metavar="REF", help="NAME[:TAG], NAME@DIGEST or DIGEST")
    p.add_argument("-o", "--output", dest="output", required=True, metavar="FILE", help="the archive to write")

    p = verb(verbs, "load", change(lambda c, a: c.load(a.input)), "load the images of an OCI layout archive")
    p.add_argument("-i", "--input", dest="input", required=True, metavar="FILE", help="the archive to read")

    p = verb(verbs, "image", change(lambda c, a: c.image_prune(build_cache=a.build_cache)), "manage the image store")
    p.add_argument("action", choices=("prune",), help="prune: remove the blobs no image references, and the layer"
                   " snapshots no image has and no pot is made on")
    p.add_argument("--build-cache", action="store_true", help="forget build's cache first (every step's image;"
                   " not while a build runs): what only it used goes too")


def _transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="allow plain HTTP and unverified TLS for this "
                   "registry (plain HTTP is allowed for loopback registries without it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars (there are none without a terminal)")


def _pull(client: ladle.Client, args: argparse.Namespace) -> None:
    with _progress(args.quiet) as bar:
        result = client.pull(args.ref, insecure=args.insecure, progress=bar)
    print(result.message)


def _push(client: ladle.Client, args: argparse.Namespace) -> None:
    with _progress(args.quiet) as bar:
        result = client.push(args.ref, args.dest, insecure=args.insecure, chunk_size=args.chunk, progress=bar)
    print(result.message)


def _login(client: ladle.Client, args: argparse.Namespace) -> None:
    if not args.stdin:
        raise Refused("login: give the password on stdin with --password-stdin (never on the command line)")
    password = sys.stdin.readline().rstrip("\r\n")
    print(client.login(args.registry, args.user, password, insecure=args.insecure).message)


def _images(client: ladle.Client, args: argparse.Namespace) -> None:
    rows = client.images()
    if args.json:
        as_json(rows)
    else:
        table([{"name": r.name, "tag": r.tag or "<none>", "digest": r.digest[:19], "size": _size(r.size),
                "created": r.created or ""} for r in rows], ["name", "tag", "digest", "size", "created"])


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@contextmanager
def _progress(quiet: bool) -> Iterator[Bar | None]:
    """Progress bars (rich) on a terminal; nothing with --quiet, without one, or without rich."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
    except ImportError:
        yield None
        return
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True,
                  console=Console(stderr=True)) as bars:
        tasks: dict[str, object] = {}

        def bar(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done)  # type: ignore[arg-type]

        yield bar


def _build(client: ladle.Client, args: argparse.Namespace) -> None:
    import os
    build_args = {}
    for item in args.build_args:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise Refused(f"--build-arg takes NAME=VALUE, not {item!r}")
        build_args[key] = value
    file = args.file
    if file is None:
        file = os.path.join(args.context, "Containerfile")
        if not os.path.exists(file) and os.path.exists(os.path.join(args.context, "Dockerfile")):
            file = os.path.join(args.context, "Dockerfile")

    def say(line: str) -> None:
        print(line, flush=True)
    result = client.build(file, args.tag, args.context, build_args=build_args, network=args.network,
                          no_cache=args.no_cache, insecure=args.insecure, stdio=(0, 1, 2), say=say)
    print(result.message)
