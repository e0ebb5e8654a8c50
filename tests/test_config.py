"""Where the state lives and what the config file may say: defaults, file, environment, flag."""

from pathlib import Path

import pytest

from ladle.config import load
from ladle.errors import UsageError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LADLE_ROOT", raising=False)
    monkeypatch.setenv("LADLE_CONFIG", str(tmp_path / "absent.toml"))


def test_default_roots_follow_the_host() -> None:
    assert load("linux").root == "/var/lib/ladle"
    assert load("freebsd").root == "/var/db/ladle"


def test_the_network_stack_is_ipv4_unless_the_file_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load("freebsd").stack == "ipv4"  # pot's POT_NETWORK_STACK default
    conf = tmp_path / "ladle.toml"
    conf.write_text('stack = "dual"\n')
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    assert load("freebsd").stack == "dual"


def test_file_then_environment_then_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "ladle.toml"
    conf.write_text('root = "/srv/from-file"\nmirror = "https://mirror.example/releases"\narch = "arm64"\n')
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    cfg = load("freebsd")
    assert (cfg.root, cfg.mirror, cfg.arch) == ("/srv/from-file", "https://mirror.example/releases", "arm64")
    monkeypatch.setenv("LADLE_ROOT", "/srv/from-env")
    assert load("freebsd").root == "/srv/from-env"
    assert load("freebsd", "/srv/from-flag").root == "/srv/from-flag"


@pytest.mark.parametrize("text, error", [
    ('nosuch = 1\n', "unknown key 'nosuch'"),
    ('root = 5\n', "root must be a str"),
    ('root = \n', "cannot read config"),
    ('stack = "ipv5"\n', "stack must be ipv4, ipv6, dual, not 'ipv5'"),
    ('stack = 6\n', "stack must be a str"),
    ('extif = "a/b"\n', "extif must be an interface name"),
    ('extif = "a-very-long-interface"\n', "extif must be an interface name"),
    ('flavours_dir = "flavours"\n', "flavours_dir must be an absolute path, not 'flavours'"),
    ('flavours_dir = 1\n', "flavours_dir must be a str"),
])
def test_bad_config_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str,
                                       error: str) -> None:
    conf = tmp_path / "ladle.toml"
    conf.write_text(text)
    monkeypatch.setenv("LADLE_CONFIG", str(conf))
    with pytest.raises(UsageError, match=error):
        load("linux")
