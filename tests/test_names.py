"""Names and in-pot paths from users are checked before anything happens."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ladle import names
from ladle.errors import UsageError


@pytest.mark.parametrize("bad", ["", "../x", "a b", "x" * 64, "-lead", ".hidden", "a/b", "a.b", "é"])
def test_bad_pot_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        names.pot_name(bad)


@pytest.mark.parametrize("good", ["web", "a", "web-1", "web_2", "X" * 63, "9lives"])
def test_good_pot_names_pass(good: str) -> None:
    assert names.pot_name(good) == good


def test_dots_are_fine_in_base_names_but_not_in_pot_names() -> None:
    assert names.name("base", "14.2") == "14.2"
    with pytest.raises(UsageError, match="invalid pot name"):
        names.pot_name("14.2")


@given(st.text(max_size=80))
def test_an_accepted_name_never_contains_a_path_separator_or_dotdot(text: str) -> None:
    try:
        value = names.name("base", text)
    except UsageError:
        return
    assert "/" not in value and value not in (".", "..") and not value.startswith(".")


@pytest.mark.parametrize("bad", ["relative", "/", "/a/../..", "/a b", "//", "/x/\n"])
def test_bad_mountpoints(bad: str) -> None:
    with pytest.raises(UsageError):
        names.mountpoint(bad)


def test_mountpoints_are_normalised() -> None:
    assert names.mountpoint("//usr/./local/") == "/usr/local"


def test_a_path_to_copy_may_have_spaces_but_no_control_characters() -> None:
    assert names.mountpoint("/my files/a b", "path", spaces=True) == "/my files/a b"
    with pytest.raises(UsageError, match="path '/a\\\\nb' must not contain control characters"):
        names.mountpoint("/a\nb", "path", spaces=True)


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b"]), max_size=8))
def test_a_normalised_mountpoint_never_climbs(parts: list[str]) -> None:
    try:
        value = names.mountpoint("/" + "/".join(parts))
    except UsageError:
        return
    assert ".." not in value.split("/") and value.startswith("/") and value != "/"


def test_env_pairs() -> None:
    assert names.env_pair("A=b=c") == ("A", "b=c")
    for bad in ("A", "=x", "1A=x", "A B=x"):
        with pytest.raises(UsageError):
            names.env_pair(bad)
