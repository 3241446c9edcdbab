"""--param parsing shared by `sched sim|serve` and `faas sim` (tailgate.cli.params)."""

from __future__ import annotations

import pytest

from tailgate.cli.params import parse_params, parse_value
from tailgate.core.errors import ArgError
from tailgate.dispatch.policy import policy_args
from tailgate.faas.strategies import strategy_args


def test_values():
    assert [parse_value(v) for v in ("5", "0.5", "none", "None", "ewma")] == [5, 0.5, None, None, "ewma"]


def test_named_and_bare_keys():
    got = parse_params(["kraken.predictor=ewma", "slice_s=0.05"], ["kraken", "sfs"], strategy_args, "strategy")
    assert got == {"kraken": {"predictor": "ewma"}, "sfs": {"slice_s": 0.05}}
    # a bare key goes to every chosen one that takes it
    both = parse_params(["dispatch_interval_s=0.1"], ["faasbatch", "vanilla"], strategy_args, "strategy")
    assert both == {"faasbatch": {"dispatch_interval_s": 0.1}, "vanilla": {"dispatch_interval_s": 0.1}}


@pytest.mark.parametrize("item, what, message", [
    ("slice_s", "strategy", "expected STRATEGY.KEY=VALUE or KEY=VALUE"),
    ("sfs.=1", "strategy", "expected STRATEGY.KEY=VALUE"),
    ("kraken.alpha=1", "strategy", "strategy 'kraken' is not among --strategy sfs"),
    ("nothing=1", "strategy", "no chosen strategy takes 'nothing'"),
    ("darc.x=1", "policy", "policy 'darc' is not among --policy sfs"),
])
def test_refusals_name_the_item(item, what, message):
    args_of = strategy_args if what == "strategy" else policy_args
    with pytest.raises(ArgError, match=message.replace(".", r"\.")):
        parse_params([item], ["sfs"], args_of, what)
