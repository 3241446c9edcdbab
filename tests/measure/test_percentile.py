"""The one percentile rule: nearest rank, equal to numpy's inverted_cdf, and the snapped variant."""
import math

import numpy as np
import pytest

from tailgate.measure.hist import LatencyHistogram, percentile_of_rows
from tailgate.measure.percentile import nearest_ranks, percentiles

PCTS = [0, 1, 25, 50, 90, 95, 99, 99.9, 99.99, 100]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 100, 999, 1000, 1001, 4096, 10_000, 123_457])
def test_plain_rule_is_numpys_inverted_cdf(n):
    values = np.random.default_rng(n).integers(0, 10**9, n)
    got = percentiles(values, PCTS)
    want = np.percentile(values, PCTS, method="inverted_cdf")
    assert got.dtype == values.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 1000, 1001, 10_000, 100_000])
def test_snapped_rule_is_ceil_of_q_n_minus_epsilon(n):
    values = np.random.default_rng(n).random(n)
    got = percentiles(values, [50, 99, 99.9], snap=True)
    ranks = [min(n, max(1, math.ceil(q / 100 * n - 1e-9))) - 1 for q in (50, 99, 99.9)]
    assert np.array_equal(got, np.sort(values)[ranks])


def test_snap_only_moves_a_product_that_should_be_an_integer():
    assert nearest_ranks(1000, [99.9]).tolist() == [1000]          # 999.0000000000001 rounds up
    assert nearest_ranks(1000, [99.9], snap=True).tolist() == [999]
    assert nearest_ranks(1001, [99.9], snap=True).tolist() == nearest_ranks(1001, [99.9]).tolist() == [1000]
    assert nearest_ranks(np.array([0, 5]), 50).tolist() == [1, 3]   # an empty row still gets rank 1


def test_histograms_use_the_same_ranks():
    values = np.arange(1, 60)                  # below 64 ns every value has its own bucket: exact
    h = LatencyHistogram()
    h.record(values)
    assert h.percentiles(PCTS[1:]).tolist() == percentiles(values, PCTS[1:]).astype(float).tolist()
    rows = np.stack([h.counts, h.counts * 0])
    assert percentile_of_rows(rows, 99)[0] == percentiles(values, [99])[0] and np.isnan(percentile_of_rows(rows, 99)[1])


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        percentiles(np.array([]), [50])
