"""The report's live experiment: DARC against c-FCFS on this machine, over UDP on loopback.

Manual
------
:func:`live_comparison` starts the live server (:class:`~tailgate.dispatch.server.ServerProcess`)
once per policy and drives it with the open-loop client (:func:`tailgate.dispatch.loadgen.load`)
at the same load, seed and duration. The workload is High Bimodal (``disp2``) with every service
time multiplied by ``run_scale`` (default 200: SHORT 200 µs, LONG 20 ms), run by ``sleep``
workers so that 14 of them fit a 2-core machine; a sleep overshoots by tens of µs here, small
beside 200 µs. DARC profiles online (its first reservation after ``resa_samples`` completions,
inside the client's 10 % warm-up). The result says per policy: short- and long-request p99.9
latency, overall p99.9 slowdown (against the scaled nominal times), goodput, and the client's
send lag with its trust verdict — the numbers are only as good as that verdict.
"""

from __future__ import annotations

from tailgate.dispatch.workloads import get_workload

POLICIES = ("darc", "cfcfs")


def live_comparison(quick: bool = False, n_workers: int = 14, load: float = 0.7, run_scale: float = 200.0,
                    duration_s: float | None = None, seed: int = 1) -> dict:
    """Run both policies live; returns per-policy summaries and the report's markdown lines."""
    from tailgate.dispatch.loadgen import load as run_client
    from tailgate.dispatch.server import ServerProcess

    wl = get_workload("disp2")
    duration_s = duration_s or (3.0 if quick else 20.0)
    rate_rps = wl.rate_rps(load, n_workers) / run_scale
    # DARC's first reservation inside the warm-up: 10 % of the requests the client will send.
    resa_samples = max(50, int(rate_rps * duration_s * 0.05))
    out: dict = {"workload": wl.name, "n_workers": n_workers, "load": load, "run_scale": run_scale,
                 "duration_s": duration_s, "worker_kind": "sleep", "rate_rps": rate_rps, "policies": {}}
    for policy in POLICIES:
        params = {"resa_samples": resa_samples, "window_min": resa_samples} if policy == "darc" else {}
        with ServerProcess(policy, wl, n_workers, worker_kind="sleep", policy_params=params,
                           run_scale=1.0) as srv:
            summary = run_client(wl, load, n_workers, port=srv.port, duration_s=duration_s, seed=seed,
                                 rate_rps=rate_rps, run_scale=run_scale, quiet=True)
        out["policies"][policy] = {"client": summary, "server": srv.stats}
    out["markdown"] = _markdown(out)
    return out


def _us(ns) -> str:
    return "–" if ns is None else f"{ns / 1e3:,.0f}"


def _markdown(out: dict) -> list[str]:
    L = [f"High Bimodal with service times ×{out['run_scale']:g} (SHORT {out['run_scale']:g} µs, LONG "
         f"{out['run_scale'] / 10:g} ms), {out['n_workers']} `sleep` workers, load {out['load']:g} "
         f"({out['rate_rps']:,.0f} requests/s), {out['duration_s']:g} s per policy, open-loop Poisson client "
         "beside the server on loopback (`tailgate sched serve` / `tailgate sched load`).\n",
         "| policy | SHORT p99.9 latency (µs) | LONG p99.9 latency (µs) | p99.9 slowdown | goodput (req/s) "
         "| dropped | client send lag p99 (µs) | verdict |",
         "|---|---:|---:|---:|---:|---:|---:|---|"]
    for policy, r in out["policies"].items():
        c = r["client"]
        s = c["metrics"]
        types = s.get("types", {})
        lag = c.get("send_lag_ns", {})
        L.append(f"| {policy} | {_us(types.get('SHORT', {}).get('latency_ns', {}).get('p99.9'))} | "
                 f"{_us(types.get('LONG', {}).get('latency_ns', {}).get('p99.9'))} | "
                 f"{s['slowdown']['p99.9']:,.1f} | {s['achieved_rps'] or 0:,.0f} | {s['dropped']} | "
                 f"{_us(lag.get('p99'))} | {c.get('verdict', '')} |")
    darc, cf = (out["policies"].get(p, {}).get("client", {}).get("metrics", {}) for p in POLICIES)
    try:
        a = darc["types"]["SHORT"]["latency_ns"]["p99.9"]
        b = cf["types"]["SHORT"]["latency_ns"]["p99.9"]
        L.append(f"\nShort requests' p99.9 latency: DARC {_us(a)} µs against c-FCFS {_us(b)} µs "
                 f"({b / a:.1f}× lower with DARC).")
        res = out["policies"]["darc"]["server"].get("reservation")
        if res:
            L.append(f"DARC's reservation at the end of the run: "
                     + "; ".join(f"types {g['types']} → workers {g['reserved']}" for g in res) + ".")
    except (KeyError, TypeError, ZeroDivisionError):
        L.append("\n(The comparison is incomplete: see `live.json`.)")
    return L
