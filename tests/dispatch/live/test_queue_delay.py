"""Admission by queueing delay: at 2x saturation a request that waited longer than the limit is shed
(answered as dropped, counted), so answered requests' latency stays near the limit; at low load
nothing is shed. Both dispatcher paths (the compiled fast loop and the time-slicing Python path)."""

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.dispatcher import Server, queue_delay_limits
from tailgate.dispatch.live.fastpath import QD_AUTO_MIN_NS, auto_queue_delay_ns
from tailgate.dispatch.live.loadgen import LoadConfig, load
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.wire import encode_requests, udp_socket
from tailgate.dispatch.workloads import LONG, SHORT, get_workload

RUN_SCALE = 100                 # disp2 as run: SHORT 100 µs, LONG 10 ms
LIMIT_US = 50_000               # 50 ms
N_WORKERS = 2
# the slowest service as run (10 ms) after the limit, and room for a loaded 2-core machine
SLACK_NS = 10_000_000 + 40_000_000

POLICIES = [("cfcfs", {}), ("ts", {"slice_ns": 2_000_000})]     # fast loop; Python path


def _run(policy, params, load_x, duration_s, limit_us=LIMIT_US):
    wl = get_workload("disp2")
    rate = load_x * wl.rate_rps(1.0, N_WORKERS) / RUN_SCALE
    with ServerProcess(policy, wl, N_WORKERS, worker_kind="sleep", policy_params=params,
                       max_queue_delay_us=limit_us) as srv:
        client = load(LoadConfig(wl, 0.5, N_WORKERS, port=srv.port, duration_s=duration_s, rate_rps=rate,
                                 run_scale=RUN_SCALE, timeout_s=2.0), quiet=True)
    return client, srv.stats


@pytest.mark.parametrize("policy, params", POLICIES)
def test_at_twice_saturation_late_requests_are_shed_and_latency_stays_near_the_limit(policy, params):
    client, s = _run(policy, params, 2.0, duration_s=3.0)
    assert s["shed"] > 0 and s["dropped_by_reason"]["shed"] == s["shed"]
    assert s["dropped_by_reason"]["queue_full"] == 0
    assert s["accounted"]
    # every shed request was answered as dropped, none lost waiting
    assert client["dropped"] == s["dropped"] and client["lost"] == 0
    assert client["answered"] > 0.3 * client["n_requests"]
    assert client["latency_ns"]["p99"] <= LIMIT_US * 1000 + SLACK_NS, client["latency_ns"]
    assert s["queue_delay_limit_us"] == {"SHORT": LIMIT_US, "LONG": LIMIT_US}


@pytest.mark.parametrize("policy, params", POLICIES)
def test_at_low_load_nothing_is_shed(policy, params):
    client, s = _run(policy, params, 0.3, duration_s=1.5)
    assert s["shed"] == 0 and client["dropped"] == 0 and client["answered"] == client["n_requests"]


def test_without_a_limit_the_backlog_grows_past_it():
    """The same overload with no limit: latency grows far beyond the limit (what the limit fixes)."""
    client, s = _run("cfcfs", {}, 2.0, duration_s=3.0, limit_us=0)
    assert s["shed"] == 0 and client["latency_ns"]["p99"] > 4 * LIMIT_US * 1000


def test_the_automatic_limit_is_twenty_longest_mean_run_times_at_least_one_second():
    assert auto_queue_delay_ns(0) == QD_AUTO_MIN_NS == 1_000_000_000
    assert auto_queue_delay_ns(100_000_000) == 2_000_000_000
    # a server's limit follows the run times it receives (the client may scale them)
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep") as srv:
        sock = udp_socket()
        sock.settimeout(10)
        for row in encode_requests([0, 1], [SHORT, LONG], [10_000_000, 60_000_000]):
            sock.sendto(row.tobytes(), ("127.0.0.1", srv.port))
        answers = [sock.recv(64) for _ in range(2)]
        sock.close()
    assert sorted(int.from_bytes(a[:4], "little") for a in answers) == [0, 1]
    assert srv.stats["queue_delay_limit_us"] == {"SHORT": 1_200_000, "LONG": 1_200_000}
    assert srv.stats["shed"] == 0


def test_limits_per_type_and_bad_limits():
    wl = get_workload("disp2")
    lim = queue_delay_limits(wl, {"short": 500, "2": 20_000})
    assert lim[SHORT] == 500_000 and lim[LONG] == 20_000_000 and lim[0] == -1      # others automatic
    assert (queue_delay_limits(wl, 0) == 0).all() and (queue_delay_limits(wl, None) == -1).all()
    with pytest.raises(ArgError, match="does not have"):
        Server("cfcfs", "disp2", 2, max_queue_delay_us={"HUGE": 5})
    with pytest.raises(ArgError, match="must be a number of µs >= 0"):
        Server("cfcfs", "disp2", 2, max_queue_delay_us=-1)
    srv = Server("cfcfs", "disp2", 2, max_queue_delay_us={"LONG": 0})
    assert srv.queue_delay_limits_us() == {"SHORT": 1_000_000, "LONG": None}
    assert np.array_equal(srv.qd_lim[[SHORT, LONG]], [-1, 0])
