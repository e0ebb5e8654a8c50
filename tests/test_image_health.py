"""An image's `Healthcheck` becomes its pots' check (real pots from images skopeo pushed to the
registry fixture): CMD-SHELL through /bin/sh, CMD as an argv, NONE as none, Docker's defaults
for zeros; `set-health` overrides it; a malformed one refuses the create in one line."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ladle.engine.health import from_image
from ladle.errors import HostError
from ladle.images.config import parse
from tests.conftest import Ladle
from tests.registry_fixtures import (
    Layout,
    registry,  # noqa: F401  (a fixture)
)
from tests.registry_fixtures import Registry as Reg
from tests.test_images_run import BUSYBOX, _add, busybox_layer, image, tar
from tests.test_life import info, until

MS = 1_000_000
CHECKS = {
    "shell": {"Test": ["CMD-SHELL", "test -f /ok && test -f /ok"], "Interval": 200 * MS, "Retries": 2},
    "argv": {"Test": ["CMD", "/bin/test", "-f", "/o k"], "Interval": 200 * MS, "Timeout": 2000 * MS,
             "StartPeriod": 0, "Retries": 1},
    "none": {"Test": ["NONE"]},
    "bogus": {"Test": ["BOGUS", "true"]},
}


def no_shell(t: tarfile.TarFile) -> None:
    for d in ("bin", "tmp"):
        _add(t, d, "d", mode=0o755)
    _add(t, "bin/busybox", data=Path(BUSYBOX).read_bytes(), mode=0o755)
    _add(t, "bin/test", "l", link="busybox")


@pytest.fixture(scope="module")
def refs(registry: Reg, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    lay = Layout(tmp_path_factory.mktemp("hcimage"))
    layers = [tar(busybox_layer)]
    out = {}
    for tag, check in CHECKS.items():
        # the CMD form's image has no /bin/sh at all: its check must run without one
        built = [tar(no_shell)] if tag == "argv" else layers
        lay.tag(tag, image(lay, built, "gzip", {"Cmd": ["/bin/busybox", "sleep", "1000"], "Healthcheck": check}))
        registry.push(lay, tag, f"test/hc:{tag}")
        out[tag] = f"{registry.host}/test/hc:{tag}"
    return out


def test_a_cmd_shell_healthcheck_runs_in_the_pot_and_set_health_overrides_it(ladle: Ladle,
                                                                            refs: dict[str, str]) -> None:
    ladle("create", "-p", "web", "--image", refs["shell"])
    check = info(ladle, "web")["healthcheck"]
    assert (check["cmd"], check["interval"], check["retries"]) == ("test -f /ok && test -f /ok", 0.2, 2)
    assert (check["timeout"], check["start_period"]) == (30.0, 0.0)  # Docker's defaults for what it leaves out
    ladle("start", "web")
    until("unhealthy", lambda: info(ladle, "web")["health"] == "unhealthy")
    ladle("exec", "web", "--", "sh", "-c", ": > /ok")
    until("healthy", lambda: info(ladle, "web")["health"] == "healthy")
    ladle("stop", "web")
    ladle("set-health", "-p", "web", "-c", "true", "--interval", "5s")
    check = info(ladle, "web")["healthcheck"]
    assert (check["cmd"], check["interval"], "argv" in check) == ("true", 5.0, False)


def test_a_cmd_healthcheck_is_an_argv_not_a_shell_line(ladle: Ladle, refs: dict[str, str]) -> None:
    ladle("create", "-p", "app", "--image", refs["argv"])
    assert info(ladle, "app")["healthcheck"]["cmd"] == "/bin/test -f '/o k'"
    ladle("start", "app")
    assert "cannot run 'sh'" in ladle.fails("exec", "app", "--", "sh", "-c", "true")
    ladle("exec", "app", "--", "/bin/busybox", "touch", "/o")  # an argv split on spaces would test /o
    assert "pot app is unhealthy: its check exited with 1" in ladle.fails("healthcheck", "app")
    ladle("exec", "app", "--", "/bin/busybox", "touch", "/o k")
    assert ladle("healthcheck", "app").stdout == "pot app is healthy\n"
    until("healthy", lambda: info(ladle, "app")["health"] == "healthy")
    ladle("stop", "app")


def test_none_means_no_healthcheck_and_a_bad_one_refuses_the_create(ladle: Ladle, refs: dict[str, str]) -> None:
    ladle("create", "-p", "quiet", "--image", refs["none"])
    assert info(ladle, "quiet")["healthcheck"] is None
    assert "has no healthcheck" in ladle.fails("healthcheck", "quiet")
    line = ladle.fails("create", "-p", "bad", "--image", refs["bogus"])
    assert line.startswith("ladle: ") and "Healthcheck Test is not" in line and line.count("\n") <= 1
    assert [p["name"] for p in json.loads(ladle("ls", "--json").stdout)] == ["quiet"]


def _config(check: Any) -> bytes:
    return json.dumps({"rootfs": {"type": "layers", "diff_ids": []}, "config": {"Healthcheck": check}}).encode()


@pytest.mark.parametrize("check", [
    {"Test": "CMD-SHELL true"}, {"Test": ["CMD"]}, {"Test": ["CMD-SHELL", "a", "b"]},
    {"Test": ["CMD", "true"], "Interval": -1}, {"Test": ["CMD", "true"], "Retries": "3"},
    {"Test": ["CMD", "true"], "Timeout": 1.5}, ["CMD", "true"],
])
def test_a_malformed_healthcheck_is_one_clear_error(check: Any) -> None:
    with pytest.raises(HostError, match=r"^image config x: Healthcheck"):
        parse(_config(check), "x")


def test_zeros_take_dockers_defaults_and_an_empty_test_is_none() -> None:
    hc = parse(_config({"test": ["CMD", "true"], "interval": 0, "retries": 0}), "x").healthcheck
    assert from_image(hc, "x") == {"cmd": "true", "argv": ["true"], "interval": 30.0, "timeout": 30.0,
                                   "start_period": 0.0, "retries": 3}
    assert parse(_config({"Test": []}), "x").healthcheck is None
    assert from_image(parse(_config({"Test": ["NONE"]}), "x").healthcheck, "x") is None
