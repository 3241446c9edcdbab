"""The faas modules' manuals: their examples run and every declared argument has a unit and help."""
from __future__ import annotations

import doctest
import importlib

import pytest

from tailgate.core.args import undocumented
from tailgate.faas.cache import CACHE_ARGS
from tailgate.faas.sim import SIM_ARGS
from tailgate.faas.strategies import COMMON_ARGS, POOL_ARGS, STRATEGY_ARGS
from tailgate.faas.trace import GENERATE_ARGS

MODULES = ["tailgate.faas.trace", "tailgate.faas.strategies", "tailgate.faas.cache", "tailgate.faas.sim"]


@pytest.mark.parametrize("name", MODULES)
def test_manual_example_runs(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
    assert "Arguments" in mod.__doc__ and "{" + "args}" not in mod.__doc__


def test_every_argument_documented():
    decls = [GENERATE_ARGS, CACHE_ARGS, SIM_ARGS, COMMON_ARGS, POOL_ARGS, *STRATEGY_ARGS.values()]
    assert [undocumented(d) for d in decls] == [[] for _ in decls]
