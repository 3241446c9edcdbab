"""A selftest of the manuals (as Snabb's ``selftest()``): every registered network function's
docstring example runs, and every declared argument says its unit and what it is for. The
argument table that ``tailgate modules NAME`` makes from them: tests/cli/test_cli_modules.py.

The examples run in an empty namespace (each imports what it uses, so it can be copied as it is)
and inside a pipeline of their own, so the modules they make join nothing else.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import tailgate.nf
from tailgate import nf
from tailgate.batchy import controllers
from tailgate.core.args import undocumented
from tailgate.dataplane.graph import Pipeline

REGISTRY = nf.registry()
_FINDER = doctest.DocTestFinder(recurse=False)
# Module manuals that may hold examples too (besides the classes'): nf/*.py, and the manuals of
# what the examples use. A module whose manual is a class's (FractionalBuffer) runs with the class.
_MANUAL_MODULES = ["tailgate.core.args", "tailgate.packet.craft"] + sorted(
    f"tailgate.nf.{m.name}" for m in pkgutil.iter_modules(tailgate.nf.__path__)
)


def _module_manuals_with_examples() -> list[str]:
    class_docs = {inspect.getdoc(c) for c in REGISTRY.values()}
    out = []
    for modname in _MANUAL_MODULES:
        mod = importlib.import_module(modname)
        if inspect.getdoc(mod) not in class_docs and _examples(mod, modname):
            out.append(modname)
    return out


def _controller_classes() -> list[type]:
    out, todo = [], [controllers.Controller]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(out, key=lambda c: c.__name__)


def _examples(obj, name: str) -> list[doctest.DocTest]:
    return [t for t in _FINDER.find(obj, name, globs={}) if t.examples]


def _run(tests: list[doctest.DocTest]) -> None:
    """Run ``tests``; fail with doctest's own report of every example that went wrong."""
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        with Pipeline():
            runner.run(t, out=report.append)
    assert runner.tries > 0
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_nf_manual_has_an_example_that_runs(name):
    tests = _examples(REGISTRY[name], name)
    assert tests, f"{name}: its docstring has no >>> example (see tailgate.nf.basic.Drop for one)"
    _run(tests)


def test_module_manual_examples_run():
    modnames = _module_manuals_with_examples()
    assert {"tailgate.core.args", "tailgate.packet.craft"} <= set(modnames)
    for modname in modnames:
        _run(_examples(importlib.import_module(modname), modname))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_nf_argument_has_a_unit_and_a_help(name):
    cls = REGISTRY[name]
    missing = undocumented(cls.args)
    assert not missing, f"{name}: arguments without unit or help: {', '.join(missing)} (use unit='-' when none)"
    for a in cls.args:
        assert "\n" not in a.help, f"{name}.{a.name}: help is one line"


def test_every_controller_argument_has_a_unit_and_a_help():
    for cls in _controller_classes():
        missing = undocumented(getattr(cls, "args", ()))
        assert not missing, f"{cls.__name__}: arguments without unit or help: {', '.join(missing)}"


def test_no_manual_lists_its_arguments_by_hand():
    """The table generated from the declarations is the one place that lists them."""
    for name, cls in REGISTRY.items():
        doc = "\n" + (inspect.getdoc(cls) or "")
        assert "\nArguments:" not in doc, f"{name}: a hand-written Arguments section"


def test_the_selftest_can_fail():
    class NoExample:
        """Says what it does, shows nothing."""

    class WrongExample:
        """
        >>> 1 + 1
        3
        """

    assert _examples(NoExample, "NoExample") == []
    with pytest.raises(AssertionError, match=r"Expected:\s+3\s+Got:\s+2"):
        _run(_examples(WrongExample, "WrongExample"))
