"""`ladle build` beyond one stage: `FROM IMAGE AS NAME`, `FROM NAME`, `COPY --from` a stage (by
name or number) or an image, only the last stage tagged, the cache of a COPY --from keyed by its
source image; HEALTHCHECK and SHELL in the config and used by pots from the image; bad stages,
checks and shells refused in one line before anything is made."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_build import digest_of
from tests.test_images_run import pushed  # noqa: F401  (a fixture)
from tests.test_life import info, until

TWO = """\
FROM {base} AS Builder
USER root
ARG V=1
COPY dir /in
RUN busybox mkdir -p /out/sub && echo "built $V" > /out/sub/file && busybox ln -s sub/file /out/link && \\
    busybox ln -s /out/sub/file /top && busybox chown 1000 /out/sub/file
FROM {base}
COPY --from=builder /out /app
COPY --from=0 /top /through-link
COPY --from=builder /in/ /in
CMD ["cat /app/sub/file /through-link; busybox readlink /app/link; test -L /through-link || echo not-a-link; \\
busybox stat -c %u /app/sub/file; cat /in/f"]
"""
RAN = "built 1\nbuilt 1\nsub/file\nnot-a-link\n1000\nfrom the context\n"  # what TWO's image says


def context(tmp_path: Path, text: str, base: str) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "dir").mkdir(parents=True, exist_ok=True)
    (ctx / "dir" / "f").write_text("from the context\n")
    (ctx / "Containerfile").write_text(text.format(base=base))
    return ctx


def config_of(ladle: Ladle, ref: str, tmp_path: Path) -> dict[str, Any]:
    """The image's config, read from the OCI archive `ladle save` writes."""
    out = tmp_path / "saved.tar"
    ladle("save", ref, "-o", str(out))
    with tarfile.open(out) as t:
        def blob(digest: str) -> Any:
            f = t.extractfile("blobs/sha256/" + digest.split(":")[1])
            assert f is not None
            return json.load(f)
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = blob(index["manifests"][0]["digest"])
        config: dict[str, Any] = blob(manifest["config"]["digest"])
    out.unlink()
    return config


def test_a_two_stage_build_copies_from_the_first_and_tags_only_the_last(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                        tmp_path: Path) -> None:
    ctx = context(tmp_path, TWO, pushed["gzip"])
    out = ladle("build", "-t", "localhost/ms:1", str(ctx), timeout=240).stdout
    assert "STEP 10/10" in out and "CACHED" not in out
    run = ladle("run", "--rm", "localhost/ms:1").stdout
    # a link inside a copied directory stays a link; one named as the source is followed in the stage
    assert run == RAN
    assert ladle("ls", "-q").stdout == ""  # neither the steps' pots nor the ones read from are left
    listed = [line.split()[:2] for line in ladle("images").stdout.splitlines()[1:]]
    assert sorted(listed) == [pushed["gzip"].rsplit(":", 1), ["localhost/ms", "1"]]  # the base, the last stage
    again = ladle("build", "-t", "localhost/ms:2", str(ctx), timeout=240).stdout
    assert again.count("--> CACHED") == 7 and digest_of(again) == digest_of(out)
    # a changed first stage: its RUN and every COPY --from of it run again
    changed = ladle("build", "--build-arg", "V=2", "-t", "localhost/ms:3", str(ctx), timeout=240).stdout
    steps = changed.split("STEP ")[1:]
    assert [s.split(":", 1)[0] for s in steps if "--> CACHED" in s] == ["2/10", "4/10"]
    assert ladle("run", "--rm", "localhost/ms:3").stdout.startswith("built 2\nbuilt 2\n")


def test_from_an_earlier_stage_starts_from_its_image_and_shell_is_used_and_kept(
        ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    text = ("FROM {base} AS base\nUSER root\n"
            'SHELL ["/bin/sh", "-c", "echo \\"via $0: $1\\" >> /shell.log; eval \\"$1\\"", "myshell"]\n'
            "RUN echo one > /one\n"
            "FROM BASE AS second\nRUN echo two > /two\nENTRYPOINT cat /one /two /shell.log\n")
    ctx = context(tmp_path, text, pushed["gzip"])
    ladle("build", "-t", "localhost/sh:1", str(ctx), timeout=180)
    assert ladle("run", "--rm", "localhost/sh:1").stdout == (
        "one\ntwo\nvia myshell: echo one > /one\nvia myshell: echo two > /two\nvia myshell: cat /one /two /shell.log\n")
    conf = config_of(ladle, "localhost/sh:1", tmp_path)["config"]
    assert conf["Shell"] == ["/bin/sh", "-c", 'echo "via $0: $1" >> /shell.log; eval "$1"', "myshell"]
    assert conf["Entrypoint"] == [*conf["Shell"], "cat /one /two /shell.log"]  # as Docker: the shell form, SHELL's


def test_copy_from_an_image_reads_its_files(ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    ctx = context(tmp_path, f"FROM scratch\nCOPY --from={pushed['zstd']} /bin/busybox /srv/motd /\n"
                            'ENTRYPOINT ["/busybox", "cat", "/motd"]\n', pushed["gzip"])
    ladle("build", "-t", "localhost/img:1", str(ctx), timeout=180)
    assert ladle("run", "--rm", "localhost/img:1").stdout == "hello from layer 2\n"


def test_a_healthcheck_is_written_as_docker_writes_it_and_a_pot_runs_it(
        ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    text = ("FROM {base} AS checked\nHEALTHCHECK --interval=200ms --timeout=1m30s --retries=2 CMD test -f /tmp/ok\n"
            'CMD ["exec busybox sleep 1000"]\n'
            'FROM checked AS argv\nHEALTHCHECK --start-period=1s CMD ["/bin/test", "-f", "/tmp/o k"]\n'
            "FROM checked\nHEALTHCHECK NONE\n")
    ctx = context(tmp_path, text, pushed["gzip"])
    # the middle stage, then the last: the same file with the last stage cut
    body = (ctx / "Containerfile").read_text()
    (ctx / "Two").write_text(body.rsplit("FROM checked\n", 1)[0])
    ladle("build", "-t", "localhost/hc:none", str(ctx), timeout=180)
    ladle("build", "-f", str(ctx / "Two"), "-t", "localhost/hc:argv", str(ctx), timeout=180)
    (ctx / "One").write_text(body.split("FROM checked AS argv")[0])
    ladle("build", "-f", str(ctx / "One"), "-t", "localhost/hc:shell", str(ctx), timeout=180)
    assert config_of(ladle, "localhost/hc:shell", tmp_path)["config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/ok"], "Interval": 200_000_000, "Timeout": 90_000_000_000, "Retries": 2}
    assert config_of(ladle, "localhost/hc:argv", tmp_path)["config"]["Healthcheck"] == {
        "Test": ["CMD", "/bin/test", "-f", "/tmp/o k"], "StartPeriod": 1_000_000_000}
    assert config_of(ladle, "localhost/hc:none", tmp_path)["config"]["Healthcheck"] == {"Test": ["NONE"]}
    ladle("create", "-p", "web", "--image", "localhost/hc:shell")
    check = info(ladle, "web")["healthcheck"]
    assert (check["cmd"], check["interval"], check["timeout"], check["retries"]) == ("test -f /tmp/ok", 0.2, 90.0, 2)
    ladle("start", "web")
    until("unhealthy", lambda: info(ladle, "web")["health"] == "unhealthy")
    ladle("exec", "web", "--", "busybox", "touch", "/tmp/ok")
    until("healthy", lambda: info(ladle, "web")["health"] == "healthy")
    ladle("stop", "web")
    ladle("create", "-p", "app", "--image", "localhost/hc:argv")
    assert info(ladle, "app")["healthcheck"]["cmd"] == "/bin/test -f '/tmp/o k'"
    ladle("create", "-p", "none", "--image", "localhost/hc:none")
    assert info(ladle, "none").get("healthcheck") is None


@pytest.mark.parametrize(("text", "error"), [
    ("FROM {base} AS\n", "line 1: FROM {base} AS needs a stage name"),
    ("FROM {base} AS a\nFROM {base} as A\n", "line 2: stage name a is already the name of stage 0"),
    ("FROM {base} AS 1a\n", "line 1: stage name '1a' must start with a letter"),
    ("FROM {base} AS a\nFROM {base}\nCOPY --from=nosuch:bad:tag /x /y\n", "line 3: COPY --from=nosuch:bad:tag names"
     " no earlier stage, and invalid"),
    ("FROM {base} AS a\nCOPY --from=a /x /y\n", "line 2: COPY --from=a names the stage it is in"),
    ("FROM {base}\nCOPY --from=0 /x /y\n", "line 2: COPY --from=0 names the stage it is in"),
    ("FROM {base}\nCOPY --from=later /x /y\nFROM {base} AS later\n", "line 2: COPY --from=later names a later stage"),
    ("FROM {base}\nCOPY --from=5 /x /y\n", "line 2: COPY --from=5: there is no stage 5"),
    ("FROM {base} AS a\nFROM {base}\nCOPY --from=a ../../ /x\n",
     "line 3: source ../../ is outside the root of stage a"),
    ("FROM {base}\nCOPY --chown=1 f /x\n", "line 2: COPY --chown is not supported"),
    ("FROM {base}\nADD --from=0 f /x\n", "line 2: ADD --from is not supported"),
    ("FROM {base}\nHEALTHCHECK --interval=5 CMD true\n", "line 2: HEALTHCHECK --interval takes a duration like"),
    ("FROM {base}\nHEALTHCHECK --timeout=10us CMD true\n", "line 2: HEALTHCHECK --timeout takes 0 or 1ms to 24h"),
    ("FROM {base}\nHEALTHCHECK --retries=-1 CMD true\n", "line 2: HEALTHCHECK --retries takes a number"),
    ("FROM {base}\nHEALTHCHECK --every=1s CMD true\n", "line 2: HEALTHCHECK --every is not supported"),
    ("FROM {base}\nHEALTHCHECK --retries=1 NONE\n", "line 2: HEALTHCHECK NONE takes no options"),
    ("FROM {base}\nHEALTHCHECK true\n", "line 2: HEALTHCHECK takes [OPTIONS] CMD COMMAND or NONE"),
    ("FROM {base}\nSHELL /bin/bash -c\n", "line 2: SHELL takes a JSON array of strings"),
])
def test_bad_stages_checks_and_shells_are_refused_before_anything_is_made(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                         tmp_path: Path, text: str,
                                                                         error: str) -> None:
    ctx = context(tmp_path, text + "RUN echo must not run\n", pushed["gzip"])
    (ctx / "f").write_text("f\n")
    images_before = ladle("images").stdout
    line = ladle.fails("build", "-t", "localhost/bad:1", str(ctx))
    assert line.startswith("ladle: Containerfile line ") and error.format(base=pushed["gzip"]) in line, line
    assert ladle("images").stdout == images_before and ladle("ls", "-q").stdout == ""


def test_copy_from_a_missing_image_names_the_line(ladle: Ladle, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    host = pushed["gzip"].split("/")[0]
    ctx = context(tmp_path, f"FROM {{base}}\nCOPY --from={host}/test/nosuch:1 /x /y\n", pushed["gzip"])
    line = ladle.fails("build", "-t", "localhost/bad:2", str(ctx))
    assert line.startswith(f"ladle: Containerfile line 2: COPY --from={host}/test/nosuch:1 names no earlier stage, and")
    ctx = context(tmp_path, "FROM {base} AS a\nFROM {base}\nCOPY --from=a /nosuch /y\n", pushed["gzip"])
    line = ladle.fails("build", "-t", "localhost/bad:3", str(ctx))
    assert line == "ladle: STEP 3/3: COPY --from=a /nosuch /y: source /nosuch does not exist in stage a", line
    assert ladle("ls", "-q").stdout == ""
