import pytest

from tailgate.core.errors import ArgError
from tailgate.dispatch.workloads import SHORT, RequestType, Workload, get_workload


@pytest.mark.parametrize(
    "name, mean_us, rps_at_full",
    [("disp2", 50.5, 277.2e3), ("sbim2", 2.9975, 4.67e6), ("tpcc", 19.068, 734e3), ("rocksdb", 318.25, 44e3)],
)
def test_mean_service_and_full_load_rate_match_the_reference(name, mean_us, rps_at_full):
    wl = get_workload(name)
    assert wl.mean_service_ns == pytest.approx(mean_us * 1000, rel=1e-6)
    assert wl.rate_rps(1.0, 14) == pytest.approx(rps_at_full, rel=0.002)


def test_bad_workloads_are_named():
    with pytest.raises(ArgError, match="type 'A' has service time -1"):
        Workload("w", (RequestType("A", SHORT, -1, 1.0),))
    with pytest.raises(ArgError, match="shares add up to 0.5"):
        Workload("w", (RequestType("A", SHORT, 10, 0.5),))
    with pytest.raises(ArgError, match=r"load 1.6 is outside \(0, 1.5\]"):
        get_workload("disp2").rate_rps(1.6, 14)
