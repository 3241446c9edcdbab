"""Module.rebuild_or_roll_back: a knob change that fails leaves the module as it was."""

import pytest

from tailgate.core.args import Arg
from tailgate.core.errors import ArgError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module


class _Table(Module):
    """A module whose table is built from two knobs, ``size`` and ``fill`` (size <= 10)."""

    args = (
        Arg("size", int, 2, unit="-", help="table entries"),
        Arg("fill", str, "a", unit="-", help="entry value"),
        Arg("label_text", str, None, unit="-", help="cleared by on_set when size changes"),
    )

    def setup(self) -> None:
        self.builds = 0
        self.rebuild_or_roll_back(self._build)

    def _build(self) -> None:
        if self.size > 10:
            raise ArgError(f"{self.label}: size {self.size} is over 10")
        self.table = [self.fill] * self.size  # derived state, assigned once nothing can fail
        self.builds += 1

    def on_set(self, name: str) -> None:
        if name == "size":
            self.label_text = None  # a side change that a failed rebuild must undo too
        self.rebuild_or_roll_back(self._build)


def _make(**kw) -> _Table:
    with Pipeline():
        return _Table(**kw)


def test_a_good_change_rebuilds_and_is_remembered():
    m = _make(size=3, fill="x")
    m.set("size", 5)
    assert m.table == ["x"] * 5 and m.builds == 2
    m.set("fill", "y")
    assert m.table == ["y"] * 5
    with pytest.raises(ArgError, match="over 10"):
        m.set("size", 11)
    # rolled back to the last good values (size 5, fill y), not to the constructor's
    assert (m.size, m.fill, m.table) == (5, "y", ["y"] * 5)


def test_a_failed_change_restores_every_argument_and_keeps_the_table():
    m = _make(size=4, fill="z", label_text="kept")
    with pytest.raises(ArgError, match="size 12 is over 10"):
        m.set("size", 12)
    assert m.size == 4 and m.label_text == "kept"  # the side change in on_set is undone as well
    assert m.table == ["z"] * 4 and m.builds == 1
    m.set("size", 1)  # and the module still takes good changes
    assert m.table == ["z"] and m.label_text is None


def test_a_failed_first_build_fails_construction():
    with pytest.raises(ArgError, match="size 20 is over 10"):
        _make(size=20)


def test_an_error_other_than_argerror_is_not_swallowed_or_rolled_back():
    m = _make(size=2)

    def boom() -> None:
        raise RuntimeError("bug")

    m.size = 7
    with pytest.raises(RuntimeError):
        m.rebuild_or_roll_back(boom)
    assert m.size == 7  # only ArgError (a bad argument) rolls back


class _Sourced(Module):
    """Rules from a file or inline: exactly one of the two is given."""

    args = (
        Arg("rules", str, None, unit="-", help="inline rules"),
        Arg("rules_file", str, None, unit="-", help="rules file"),
    )

    def setup(self) -> None:
        self.rebuild_or_roll_back(self._build)

    def _build(self) -> None:
        if (self.rules is None) == (self.rules_file is None):
            raise ArgError(f"{self.label}: give exactly one of 'rules' or 'rules_file'")
        if self.rules == "bad":
            raise ArgError(f"{self.label}: bad rules")
        self.source = self.rules if self.rules is not None else f"file {self.rules_file}"

    def on_set(self, name: str) -> None:
        self.rebuild_or_roll_back(self._build, changed=name, one_of=("rules", "rules_file"))


def test_one_of_a_pair_set_clears_the_other_and_a_failure_puts_it_back():
    with Pipeline():
        m = _Sourced(rules_file="r.txt")
    m.set("rules", "a b")
    assert (m.rules, m.rules_file, m.source) == ("a b", None, "a b")
    with pytest.raises(ArgError, match="bad rules"):
        m.set("rules", "bad")
    assert (m.rules, m.rules_file, m.source) == ("a b", None, "a b")
    m.set("rules_file", "s.txt")
    assert (m.rules, m.rules_file, m.source) == (None, "s.txt", "file s.txt")
    with pytest.raises(ArgError, match="exactly one"):
        m.set("rules_file", None)  # setting one to None clears nothing: then neither is given
    assert (m.rules, m.rules_file) == (None, "s.txt")
