"""Escape probes for `ladle build`: a Containerfile and a context are the builder's input, not
the host's. A COPY source must not leave the context (`..`, an absolute path, a link out of it,
a build argument that makes one), a link inside a copied directory is copied as a link and never
followed on the host, a destination with `..` stays inside the image, and a RUN step that plants
a link where a later COPY goes leads that COPY inside the pot only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Ladle
from tests.registry_fixtures import registry  # noqa: F401  (a fixture)
from tests.test_images_run import pushed  # noqa: F401  (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def context(tmp_path: Path, text: str) -> tuple[Path, Path]:
    """A context with a file and a directory, and a secret beside it (outside it)."""
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    ctx = tmp_path / "ctx"
    (ctx / "dir").mkdir(parents=True)
    (ctx / "f").write_text("f\n")
    (ctx / "Containerfile").write_text(text)
    return ctx, secret


def _unchanged(ladle: Ladle, before: str) -> None:
    assert ladle("images").stdout == before
    assert ladle("ls", "-q").stdout == ""


@pytest.mark.parametrize("source", ["../secret", "/../secret", "dir/../../secret", "$P/secret", "link", "dir/up"])
def test_a_source_outside_the_context_is_refused(ladle: Ladle, tmp_path: Path, source: str) -> None:
    ctx, secret = context(tmp_path, f"FROM scratch\nARG P=..\nCOPY {source} /x\n")
    os.symlink(secret, ctx / "link")
    os.symlink("../../secret", ctx / "dir" / "up")
    before = ladle("images").stdout
    line = ladle.fails("build", "-t", "localhost/esc:1", str(ctx))
    assert line.endswith("is outside the build context"), line
    _unchanged(ladle, before)


def test_a_link_inside_a_copied_directory_is_copied_as_a_link(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                             tmp_path: Path) -> None:
    ctx, secret = context(tmp_path, f"FROM {pushed['gzip']}\nCOPY dir /d\n")
    os.symlink(str(secret), ctx / "dir" / "leak")
    ladle("build", "-t", "localhost/esc:2", str(ctx), timeout=180)
    out = ladle("run", "--rm", "localhost/esc:2", "test -L /d/leak && echo a-link; cat /d/leak 2>&1; ls -l /d").stdout
    assert out.startswith("a-link\n") and f"leak -> {secret}" in out
    assert "host secret" not in out


def test_a_destination_with_dotdot_stays_in_the_image(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                     tmp_path: Path) -> None:
    name = f"ladle-build-escape-{os.getpid()}"
    ctx, _ = context(tmp_path, f"FROM {pushed['gzip']}\nWORKDIR /srv\nCOPY f ../../../../../tmp/{name}\n")
    ladle("build", "-t", "localhost/esc:3", str(ctx), timeout=180)
    assert not os.path.lexists(f"/tmp/{name}")
    assert ladle("run", "--rm", "localhost/esc:3", f"cat /tmp/{name}").stdout == "f\n"


def test_a_link_a_run_step_plants_leads_a_copy_only_inside_the_pot(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                                  tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    ctx, _ = context(tmp_path, f"FROM {pushed['gzip']}\nUSER root\nRUN ln -s {target} /planted\n"
                               "COPY f /planted/\n")
    ladle("build", "-t", "localhost/esc:4", str(ctx), timeout=180)
    assert list(target.iterdir()) == []  # the host directory the link names got nothing
    out = ladle("run", "--rm", "localhost/esc:4", f"cat {target}/f").stdout
    assert out == "f\n"  # it went to that path inside the image


def test_scratch_sources_cannot_lead_a_later_one_through_their_link(ladle: Ladle, tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, "FROM scratch\nCOPY dir f /\n")
    os.symlink(str(tmp_path), ctx / "dir" / "out")
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY dir /\nCOPY f /out/f2\n")
    ladle("build", "-t", "localhost/esc:5", str(ctx), timeout=60)
    assert not (tmp_path / "f2").exists()


STAGE = """\
FROM {base} AS s
USER root
RUN echo stage shadow > /etc/shadow && busybox ln -s /etc/shadow /leak && busybox mkdir /d && \\
    busybox ln -s ../etc/shadow /d/up && busybox ln -s {secret} /d/secret && busybox ln -s /etc/shadow /d/shadow && \\
    busybox ln -s / /root-link
"""


def _host_secrets(secret: Path) -> list[str]:
    out = [secret.read_text()]
    if os.path.exists("/etc/shadow"):
        out += [line for line in Path("/etc/shadow").read_text().splitlines() if line.strip()]
    return out


def test_links_of_a_stage_resolve_inside_the_stage(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                  tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    ctx, _ = context(tmp_path, STAGE.format(base=pushed["gzip"], secret=secret)
                     + f"FROM {pushed['gzip']}\nCOPY --from=s /leak /x\nCOPY --from=s /d/up /y\nCOPY --from=s /d /d\n")
    ladle("build", "-t", "localhost/esc:6", str(ctx), timeout=180)
    out = ladle("run", "--rm", "localhost/esc:6", "cat /x /y; busybox readlink /d/secret; busybox readlink /d/shadow;"
                " cat /d/shadow /d/secret 2>&1; true").stdout
    assert out.startswith(f"stage shadow\nstage shadow\n{secret}\n/etc/shadow\n"), out
    assert "can't open '/d/shadow'" in out and "can't open '/d/secret'" in out  # links to what this image lacks
    assert all(s not in out for s in _host_secrets(secret))


@pytest.mark.parametrize(("source", "error"), [
    ("../../", "source ../../ is outside the root of stage s"),
    ("/../../etc/shadow", "source /../../etc/shadow is outside the root of stage s"),
    ("d/../../../etc", "source d/../../../etc is outside the root of stage s"),
    ("/root-link", "source /root-link of stage s is a link to its root: name what to copy"),
])
def test_a_stage_source_outside_its_root_is_refused(ladle: Ladle, pushed: dict[str, str],  # noqa: F811
                                                   tmp_path: Path, source: str, error: str) -> None:
    secret = tmp_path / "secret"
    ctx, _ = context(tmp_path, STAGE.format(base=pushed["gzip"], secret=secret)
                     + f"FROM {pushed['gzip']}\nCOPY --from=s {source} /x\n")
    ladle("pull", pushed["gzip"])
    before = ladle("images").stdout
    line = ladle.fails("build", "-t", "localhost/esc:7", str(ctx))
    assert line.endswith(error), line
    _unchanged(ladle, before)
