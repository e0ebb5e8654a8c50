"""`ladle build`: a Containerfile on the busybox test image (pushed by skopeo to Debian's
registry), each RUN, COPY and ADD a layer made in a pot, the result run with `ladle run`; the
cache per step; build arguments; a failing step leaves nothing."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Ladle
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_images_run import layer_keys, pushed  # noqa: F401  (a fixture)

FILE = """\
# syntax=docker/dockerfile:1
FROM {base}
ARG GREET=nobody
ENV WHO="the builder" \\
    EMPTY=
USER root
COPY app /app
COPY top.txt /srv/
WORKDIR /app
RUN echo "$WHO ran as $(id -u) in $(pwd) for $GREET" > ran; \\
    chmod 644 ran
USER worker
LABEL org.example.kind=test
EXPOSE 8080
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat ran hello.txt sub/deep.txt /srv/top.txt; id -u; pwd; echo $WHO; test -z \\"$GREET\\" && echo no-arg"]
"""


def context(tmp_path: Path, base: str, text: str = FILE) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "app" / "sub").mkdir(parents=True, exist_ok=True)
    (ctx / "app" / "hello.txt").write_text("hello from the context\n")
    (ctx / "app" / "sub" / "deep.txt").write_text("deep\n")
    (ctx / "top.txt").write_text("top\n")
    (ctx / "Containerfile").write_text(text.format(base=base))
    return ctx


def digest_of(out: str) -> str:
    m = re.search(r"\((sha256:[0-9a-f]{64})\)\n$", out)
    assert m, out
    return m.group(1)


def test_build_runs_each_step_and_the_image_runs(ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    ctx = context(tmp_path, pushed["gzip"])
    out = ladle("build", "-t", "localhost/built:1", str(ctx), timeout=180).stdout
    assert "STEP 1/13: FROM" in out and "CACHED" not in out
    assert out.endswith(")\n") and "built localhost/built:1 (sha256:" in out
    run = ladle("run", "--rm", "localhost/built:1").stdout
    assert run == ("the builder ran as 0 in /app for nobody\nhello from the context\ndeep\ntop\n1000\n/app\n"
                   "the builder\nno-arg\n")  # GREET was a build argument: not in the image's env
    assert ladle("ls", "-q").stdout == ""  # no pot left from the steps
    # a second build of the same file: every step cached, the same image
    again = ladle("build", "-t", "localhost/built:2", "-f", str(ctx / "Containerfile"), str(ctx), timeout=180).stdout
    assert again.count("--> CACHED") == 11
    assert digest_of(again) == digest_of(out)


def test_a_changed_copy_source_remakes_that_step_and_the_ones_after(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, pushed["gzip"])
    first = ladle("build", "-t", "localhost/b:1", str(ctx), timeout=180).stdout
    (ctx / "top.txt").write_text("changed\n")
    second = ladle("build", "-t", "localhost/b:2", str(ctx), timeout=180).stdout
    steps = second.split("STEP ")[1:]
    cached = [s.split(":", 1)[0] for s in steps if "--> CACHED" in s]
    assert cached == ["3/13", "4/13", "5/13"]  # up to COPY app; FROM and ARG are no cached steps
    assert digest_of(first) != digest_of(second)
    assert ladle("run", "--rm", "localhost/b:2", "cat /srv/top.txt").stdout == "changed\n"
    assert ladle("run", "--rm", "localhost/b:1", "cat /srv/top.txt").stdout == "top\n"


def test_a_build_argument_reaches_run_and_changes_the_cache(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                           tmp_path: Path) -> None:
    ctx = context(tmp_path, pushed["gzip"])
    ladle("build", "-t", "localhost/a:1", str(ctx), timeout=180)
    out = ladle("build", "--build-arg", "GREET=you", "-t", "localhost/a:2", str(ctx), timeout=180).stdout
    assert "STEP 8/13" in out and "--> CACHED" not in out.split("STEP 8/13")[1].split("STEP 9/13")[0]
    assert ladle("run", "--rm", "localhost/a:2", "cat ran").stdout == "the builder ran as 0 in /app for you\n"


def test_a_failing_run_names_its_step_and_leaves_nothing(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                       tmp_path: Path) -> None:
    ctx = context(tmp_path, pushed["gzip"], "FROM {base}\nRUN echo about to fail; exit 3\nCMD [\"true\"]\n")
    ladle("run", "--rm", pushed["gzip"], "true")  # the base's layers unpacked, as any run of it does
    before = set(layer_keys(ladle))
    images_before = ladle("images").stdout
    proc = ladle("build", "-t", "localhost/bad:1", str(ctx), check=False, timeout=180)
    assert proc.returncode != 0
    assert proc.stderr == "ladle: STEP 2/3: RUN echo about to fail; exit 3: exited 3\n"
    assert "about to fail" in proc.stdout  # the step's output reached the user
    assert ladle("ls", "-q").stdout == ""
    assert ladle("images").stdout == images_before
    assert set(layer_keys(ladle)) == before
    assert not list((ladle.root).glob("build-*"))  # no staged files


def test_from_scratch_copies_a_static_binary_into_an_image(ladle: Ladle, tmp_path: Path) -> None:
    import shutil
    ctx = tmp_path / "ctx"
    (ctx / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", ctx / "bin" / "busybox")
    (ctx / "Containerfile").write_text('FROM scratch\nCOPY bin /bin/\nENTRYPOINT ["/bin/busybox"]\n'
                                       'CMD ["echo", "from scratch"]\n')
    ladle("build", "-t", "localhost/scratch:1", str(ctx), timeout=120)
    assert ladle("run", "--rm", "localhost/scratch:1").stdout == "from scratch\n"
    assert ladle("run", "--rm", "localhost/scratch:1", "sh", "-c", "ls /bin").stdout == "busybox\n"


def test_workdir_is_made_when_missing(ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    ctx = context(tmp_path, pushed["gzip"], "FROM {base}\nUSER root\nWORKDIR /new/dir\nRUN pwd > here\n"
                                            "WORKDIR /other\nCMD [\"pwd\"]\n")
    ladle("build", "-t", "localhost/wd:1", str(ctx), timeout=120)
    assert ladle("run", "--rm", "localhost/wd:1").stdout == "/other\n"
    assert ladle("run", "--rm", "localhost/wd:1", "cat /new/dir/here").stdout == "/new/dir\n"


def test_add_copies_a_local_file_and_refuses_an_archive_or_a_url(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                 tmp_path: Path) -> None:
    import tarfile
    ctx = context(tmp_path, pushed["gzip"], "FROM {base}\nADD top.txt /srv/added\n")
    ladle("build", "-t", "localhost/add:1", str(ctx), timeout=120)
    assert ladle("run", "--rm", "localhost/add:1", "cat /srv/added").stdout == "top\n"
    with tarfile.open(ctx / "a.tar", "w") as t:
        t.add(ctx / "top.txt", arcname="top.txt")
    (ctx / "Containerfile").write_text(f"FROM {pushed['gzip']}\nADD a.tar /srv/\n")
    line = ladle.fails("build", "-t", "localhost/add:2", str(ctx))
    assert line.endswith("ADD of an archive (a.tar) is not unpacked by ladle: COPY it and RUN tar")
    (ctx / "Containerfile").write_text(f"FROM {pushed['gzip']}\nADD https://example.org/x /srv/\n")
    line = ladle.fails("build", "-t", "localhost/add:3", str(ctx))
    assert line.endswith("ADD of a URL is not supported: local files of the context only")
    assert "localhost/add:2" not in ladle("images").stdout and ladle("ls", "-q").stdout == ""
