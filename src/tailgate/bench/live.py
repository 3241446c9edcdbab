"""The live server's speed: zero-work requests dispatched per second, the client beside it."""

from __future__ import annotations

from tailgate.dispatch.live.loadgen import bench_live


def bench_live_records(quick: bool = False) -> list[dict]:
    """The live server's zero-work dispatch rate (:func:`tailgate.dispatch.live.loadgen.bench_live`) as records.

    One record for the closed-loop capacity (the client keeps a window of requests in flight)
    and one for the best open-loop paced rate that was answered in full (the ladder tops out at
    100k), with the client's p50 and p99 send lag. The issue's target: ≥ 50 000 requests/s on this
    2-core machine, client beside it.
    """
    full = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 100_000)
    r = bench_live(rates_rps=(10_000, 20_000) if quick else full,
                   duration_s=0.5 if quick else 1.5, capacity_requests=10_000 if quick else 60_000,
                   repeats=1 if quick else 2)
    lag = r["send_lag_ns_at_best"] or {}
    common = {"name": "sched_live", "impl": "tailgate", "policy": r["policy"], "workers": r["n_workers"],
              "target_rps": r["target_rps"]}
    return [{**common, "mode": "closed_loop", "rps": r["dispatch_rate_rps"]},
            {**common, "mode": "open_loop", "rps": r["open_loop_best_rps"], "send_lag_p50_us": (lag.get("p50") or 0) / 1e3,
             "send_lag_p99_us": (lag.get("p99") or 0) / 1e3}]
