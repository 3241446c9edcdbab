"""Batchy's cost and delay model (reference §4, §6, §7)."""
import math

import pytest

from tailgate.batchy import model


def test_batchiness_and_controllability():
    assert model.batchiness(0, 0) == 1.0
    assert model.batchiness(400, 40) == pytest.approx(40 / 440)
    assert model.is_controllable(400, 40)
    assert model.is_controllable(100, 100)          # exactly the bound: 0.5
    assert not model.is_controllable(380.9, 1008.9)  # the reference's ACL: per-packet heavy
    assert not model.is_controllable(0, 0)           # unprofiled: nothing to gain


def test_delay_and_its_sensitivities():
    x, R, T0, T1 = 1e-3, 1e-2, 400.0, 40.0             # 1 batch/us, 10 packets/us
    assert model.module_delay_ns(x, T0, T1, 8) == pytest.approx(1000 + 400 + 320)
    assert model.delay_sensitivity(R, T1) == pytest.approx(100 + 40)
    # the gradient is the per-batch overhead saved: negative, smaller in size as q grows
    g8, g16 = model.cost_gradient(x, T0, 8), model.cost_gradient(x, T0, 16)
    assert g8 < g16 < 0
    assert g8 == pytest.approx(-x * T0 / 8)
    assert model.fill_time_ns(10, R) == pytest.approx(1000)


def test_no_traffic_means_infinite_sensitivity():
    assert math.isinf(model.delay_sensitivity(0.0, 10))
    assert math.isinf(model.module_delay_ns(0.0, 10, 1, 4))
    assert math.isinf(model.fill_time_ns(4, 0.0))
    assert model.fill_time_ns(0, 0.0) == 0.0


def test_pull_target_and_estimates():
    assert model.pull_target(15.3) == 19
    assert model.pull_target(31.0) == 32          # capped
    assert model.pull_target(0.0) == 4
    assert model.flow_estimate_ns(1000, [200, 300], [50]) == 1550
