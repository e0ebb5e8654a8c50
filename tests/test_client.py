"""The library: `ladle.Client` returns dataclasses, raises ladle's exceptions, never prints, and one
Client serves many threads at once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ladle


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ladle.Client]:
    c = ladle.Client(str(tmp_path / "root"))
    c.init()
    c.create_base("busybox")
    try:
        yield c
    finally:
        for pot in c.pots():
            c.destroy(pot.name, recursive=True, force=True)
        c.close()


def test_the_verbs_return_data_and_print_nothing(client: ladle.Client, capfd: pytest.CaptureFixture[str]) -> None:
    change = client.create("web", base="busybox", cmd="sleep 1000", persistent=True)
    assert change == ladle.Change("created pot web")
    client.start("web")
    pots = client.pots()
    assert pots == [ladle.Pot("web", "running", "busybox", "multi", 1, "none")]
    info = client.info("web")
    assert isinstance(info, ladle.PotInfo) and info.persistent and info.run and info.run.state == "running"
    assert dataclasses.asdict(info)["run"]["main_pid"] == info.run.main_pid
    assert client.exec("web", ["sh", "-c", "exit 4"]) == 4
    result = client.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 3"], rm=True)
    assert (result.exit_code, sorted(result.output.split() if result.output else [])) == (3, [b"err", b"out"])
    client.stop("web")
    assert client.last_run_stats("web").pot_json() == {"ExitCode": 128 + 15}
    client.create("job", base="busybox", cmd="sh -c 'echo done; exit 6'", persistent=False)
    job = client.start_attached("job")
    assert (job.exit_code, job.output) == (6, b"done\n") and client.info("job").status == "exited (6)"
    assert capfd.readouterr() == ("", "")  # the library never prints


def test_errors_are_ladles_exceptions(client: ladle.Client) -> None:
    with pytest.raises(ladle.NotFound, match="pot nosuch does not exist"):
        client.start("nosuch")
    with pytest.raises(ladle.UsageError, match="invalid pot name"):
        client.create("a b", base="busybox")
    client.create("a", base="busybox")
    with pytest.raises(ladle.Exists):
        client.create("a", base="busybox")
    with pytest.raises(ladle.StateError, match="not running"):
        client.exec("a", ["true"])
    assert issubclass(ladle.NotFound, ladle.LadleError)


def test_a_dry_run_returns_the_plan_and_changes_nothing(client: ladle.Client) -> None:
    dry = ladle.Client(client.root, dry_run=True)
    change = dry.create("planned", base="busybox")
    assert change.dry_run and change.message == ""
    assert any("# state: record pots name=planned" in line for line in change.commands)
    assert client.pots() == []
    dry.close()


def test_one_client_serves_many_threads(client: ladle.Client) -> None:
    """Eight threads create, start, exec in, stop and destroy their own pots through one Client,
    while four more race for one name; nothing is lost or corrupted."""
    errors: list[BaseException] = []
    codes: dict[str, int] = {}

    def own(i: int) -> None:
        name = f"t{i}"
        try:
            client.create(name, base="busybox", cmd="sleep 1000")
            client.start(name)
            codes[name] = client.exec(name, ["sh", "-c", f"exit {i}"])
            client.stop(name)
            client.destroy(name)
        except BaseException as e:
            errors.append(e)

    outcomes: list[str] = []

    def race() -> None:
        try:
            client.create("same", base="busybox")
            outcomes.append("created")
        except ladle.LadleError as e:
            outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=own, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert codes == {f"t{i}": i for i in range(8)}
    assert sorted(outcomes) == ["Exists", "Exists", "Exists", "created"]
    assert [p.name for p in client.pots()] == ["same"]


def test_importing_ladle_costs_nothing_and_exports_its_api() -> None:
    code = ("import sys, ladle; heavy = [m for m in sys.modules if m.startswith('ladle.')];"
            "print(heavy); print(sorted(n for n in ladle.__all__ if not hasattr(ladle, n)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "[]"  # nothing of the package is loaded until it is used ...
    assert out.splitlines()[1] == "[]"  # ... and every exported name resolves
    assert (Path(ladle.__file__).parent / "py.typed").exists()


def test_the_root_comes_from_the_environment_then_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ladle.toml"
    config.write_text(f'root = "{tmp_path / "from-config"}"\n')
    monkeypatch.setenv("LADLE_CONFIG", str(config))
    monkeypatch.delenv("LADLE_ROOT", raising=False)
    assert ladle.Client().root == str(tmp_path / "from-config")
    monkeypatch.setenv("LADLE_ROOT", str(tmp_path / "from-env"))
    assert ladle.Client().root == str(tmp_path / "from-env")
    assert ladle.Client(str(tmp_path / "given")).root == str(tmp_path / "given")
    assert os.environ["LADLE_ROOT"] == str(tmp_path / "from-env")
