"""The report's live experiment: DARC against c-FCFS on this machine, over UDP on loopback.

Manual
------
:func:`live_comparison` starts the live server (:class:`~tailgate.dispatch.live.process.ServerProcess`)
once per policy and drives it with the open-loop client (:func:`tailgate.dispatch.live.loadgen.load`)
at the same load, seed and duration. The workload is High Bimodal (``disp2``) with every service
time multiplied by ``run_scale`` (default 1000: SHORT 1 ms, LONG 100 ms), run by ``sleep``
workers so that 14 of them fit a 2-core machine; a sleep's overshoot (tens of µs) is small beside
1 ms. DARC profiles online (its first reservation after ``resa_samples`` completions, inside the
client's 10 % warm-up). The result says per policy: short- and long-request p99.9 latency,
overall p99.9 slowdown (against the scaled nominal times), goodput, and the client's send lag
with its trust verdict — the numbers are only as good as that verdict.

:func:`machine_stalls` measures the floor under any live timing here: it spins on the clock and
counts the gaps in which this process did not run at all (the hypervisor's or the kernel's, not
ours). A client's p99 send lag cannot be better than these stalls allow, so on a machine that
stalls for ms the verdict says "not trustworthy" for sub-ms budgets however small the median lag.
Why ×1000, and what was measured on the development guest: ``docs/notes.md``.

Example::

    out = live_comparison(n_workers=4, load_frac=0.5, run_scale=100, duration_s=1.0)
    "\n".join(out["markdown"])
"""

from __future__ import annotations

import time

from tailgate.dispatch.live.loadgen import LoadConfig, load
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.workloads import get_workload

POLICIES = ("darc", "cfcfs")


def machine_stalls(duration_s: float = 1.0, gap_ns: int = 100_000) -> dict:
    """Spin on ``perf_counter_ns`` for ``duration_s``; count gaps over ``gap_ns`` (this process
    was not running). Returns ``{duration_s, gap_ns, count, per_s, max_ns, total_ns}``."""
    pc = time.perf_counter_ns
    t_end = pc() + int(duration_s * 1e9)
    last = pc()
    gaps = []
    while last < t_end:
        t = pc()
        if t - last > gap_ns:
            gaps.append(t - last)
        last = t
    return {"duration_s": duration_s, "gap_ns": gap_ns, "count": len(gaps), "per_s": len(gaps) / duration_s,
            "max_ns": max(gaps, default=0), "total_ns": sum(gaps)}


def live_comparison(quick: bool = False, n_workers: int = 14, load_frac: float = 0.7, run_scale: float = 1000.0,
                    duration_s: float | None = None, seed: int = 1) -> dict:
    """Run both policies live; returns per-policy summaries and the report's markdown lines."""

    wl = get_workload("disp2")
    duration_s = duration_s or (3.0 if quick else 30.0)
    rate_rps = wl.rate_rps(load_frac, n_workers) / run_scale
    # DARC's first reservation inside the warm-up: 10 % of the requests the client will send.
    resa_samples = max(50, int(rate_rps * duration_s * 0.05))
    out: dict = {"workload": wl.name, "n_workers": n_workers, "load": load_frac, "run_scale": run_scale,
                 "duration_s": duration_s, "worker_kind": "sleep", "rate_rps": rate_rps, "policies": {},
                 "machine_stalls": machine_stalls(0.5 if quick else 2.0)}
    for policy in POLICIES:
        params = {"resa_samples": resa_samples, "window_min": resa_samples} if policy == "darc" else {}
        with ServerProcess(policy, wl, n_workers, worker_kind="sleep", policy_params=params,
                           run_scale=1.0) as srv:
            summary = load(LoadConfig(wl, load_frac, n_workers, port=srv.port, duration_s=duration_s, seed=seed,
                                      rate_rps=rate_rps, run_scale=run_scale), quiet=True)
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
         "| dropped | client send lag p50 / p99 (µs) | verdict |",
         "|---|---:|---:|---:|---:|---:|---:|---|"]
    for policy, r in out["policies"].items():
        c = r["client"]
        s = c["metrics"]
        types = s.get("types", {})
        lag = c.get("send_lag_ns", {})
        L.append(f"| {policy} | {_us(types.get('SHORT', {}).get('latency_ns', {}).get('p99.9'))} | "
                 f"{_us(types.get('LONG', {}).get('latency_ns', {}).get('p99.9'))} | "
                 f"{s['slowdown']['p99.9']:,.1f} | {s['achieved_rps'] or 0:,.0f} | {s['dropped']} | "
                 f"{_us(lag.get('p50'))} / {_us(lag.get('p99'))} | {c.get('verdict', '')} |")
    st = out.get("machine_stalls")
    if st:
        L.append(f"\nThis machine's own stalls (a process spinning on the clock for {st['duration_s']:g} s, "
                 f"nothing else running): {st['count']} gaps over {st['gap_ns'] / 1e3:g} µs "
                 f"({st['per_s']:.1f}/s), the longest {_us(st['max_ns'])} µs — a floor under the send lag.")
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
