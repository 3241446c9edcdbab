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

A live run is not deterministic, so the report makes it several times: :func:`live_runs` repeats
:func:`live_comparison` ``n_runs`` times (default 3) and writes each number as its median and
range (min–max) over the runs (:func:`tailgate.bench.spread.spread`), with how many runs the
client trusted.

:func:`machine_stalls` measures the floor under any live timing here: it spins on the clock and
counts the gaps in which this process did not run at all (the hypervisor's or the kernel's, not
ours). A client's p99 send lag cannot be better than these stalls allow, so on a machine that
stalls for ms the verdict says "not trustworthy" for sub-ms budgets however small the median lag.
Why ×1000, and what was measured on the development guest: ``docs/notes.md``.

Example::

    out = live_comparison(n_workers=4, load_frac=0.5, run_scale=100, duration_s=1.0)
    "\n".join(out["markdown"])
    many = live_runs(3, n_workers=4, load_frac=0.5, run_scale=100, duration_s=1.0)
    "\n".join(many["markdown"])
"""

from __future__ import annotations

import time
from typing import Callable

from tailgate.bench.spread import spread
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


def live_runs(n_runs: int = 3, say: Callable[[str], None] | None = None, **kw) -> dict:
    """:func:`live_comparison` ``n_runs`` times (``kw`` passed on); returns ``{"runs": [each
    run's result], "numbers": per policy each number's list over the runs, "markdown": lines}``.
    A run that fails is kept as ``{"error": ...}`` and counted; the others are tabulated."""
    if n_runs < 1:
        raise ValueError(f"n_runs must be at least 1, got {n_runs}")
    runs = []
    for k in range(n_runs):
        if say:
            say(f"live run {k + 1}/{n_runs}: DARC vs c-FCFS")
        try:
            runs.append(live_comparison(**kw))
        except Exception as e:       # one failed run must not lose the others
            runs.append({"error": f"{type(e).__name__}: {e}"})
    numbers = live_numbers(runs)
    return {"runs": runs, "numbers": numbers, "markdown": markdown_runs(runs, numbers)}


def live_numbers(runs: list[dict]) -> dict:
    """Per policy, each number's values over the runs that finished (ns, req/s, counts), and
    ``short_ratio``: c-FCFS's short-request p99.9 latency over DARC's, per run."""

    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict):
                return None
            d = d.get(k)
        return d

    ok = [r for r in runs if "error" not in r]
    out: dict = {"runs": len(runs), "finished": len(ok), "policies": {}}
    for policy in POLICIES:
        rows = [r["policies"].get(policy, {}) for r in ok]
        out["policies"][policy] = {
            "short_p999_ns": [get(r, "client", "metrics", "types", "SHORT", "latency_ns", "p99.9") for r in rows],
            "long_p999_ns": [get(r, "client", "metrics", "types", "LONG", "latency_ns", "p99.9") for r in rows],
            "slowdown_p999": [get(r, "client", "metrics", "slowdown", "p99.9") for r in rows],
            "goodput_rps": [get(r, "client", "metrics", "achieved_rps") for r in rows],
            "dropped": [get(r, "client", "metrics", "dropped") for r in rows],
            "send_lag_p50_ns": [get(r, "client", "send_lag_ns", "p50") for r in rows],
            "send_lag_p99_ns": [get(r, "client", "send_lag_ns", "p99") for r in rows],
            "trusted": sum(1 for r in rows if get(r, "client", "trustworthy")),
        }
    d, c = out["policies"].get("darc", {}), out["policies"].get("cfcfs", {})
    out["short_ratio"] = [b / a if a and b else None for a, b in zip(d.get("short_p999_ns", []),
                                                                       c.get("short_p999_ns", []))]
    out["stall_max_ns"] = [get(r, "machine_stalls", "max_ns") for r in ok]
    out["stall_count"] = [get(r, "machine_stalls", "count") for r in ok]
    return out


def _ms(v: float) -> str:
    return f"{v / 1e6:,.1f}"


def _n(v: float) -> str:
    return f"{v:,.0f}"


def markdown_runs(runs: list[dict], numbers: dict) -> list[str]:
    """The report's live section over several runs: the setting, a table of each number's
    median (min–max), the machine's stalls, and DARC's gain on short requests."""
    ok = [r for r in runs if "error" not in r]
    errors = [r["error"] for r in runs if "error" in r]
    if not ok:
        return [f"All {len(runs)} live runs failed; the first: {errors[0]}"]
    first = ok[0]
    n = len(ok)
    L = [f"High Bimodal with service times ×{first['run_scale']:g} (SHORT {first['run_scale']:g} µs, LONG "
         f"{first['run_scale'] / 10:g} ms), {first['n_workers']} `sleep` workers, load {first['load']:g} "
         f"({first['rate_rps']:,.0f} requests/s), {first['duration_s']:g} s per policy, open-loop Poisson client "
         "beside the server on loopback (`tailgate sched serve` / `tailgate sched load`). "
         f"Run {len(runs)} times, the policies alternating; each cell is the median over the {n} finished runs "
         "and, in brackets, the range (min–max)."
         + (f" {len(errors)} run(s) failed: {errors[0]}" if errors else "") + "\n",
         "<!-- live: begin -->",
         "| policy | SHORT p99.9 latency (ms) | LONG p99.9 latency (ms) | p99.9 slowdown | goodput (req/s) "
         "| dropped | client send lag p99 (ms) | runs the client trusted |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for policy, v in numbers["policies"].items():
        L.append(f"| {policy} | {spread(v['short_p999_ns'], _ms)} | {spread(v['long_p999_ns'], _ms)} | "
                 f"{spread(v['slowdown_p999'], lambda x: f'{x:,.1f}')} | {spread(v['goodput_rps'], _n)} | "
                 f"{spread(v['dropped'], _n)} | {spread(v['send_lag_p99_ns'], lambda x: f'{x / 1e6:,.2f}')} | "
                 f"{v['trusted']}/{n} |")
    L.append("")
    L.append(f"Short requests' p99.9 latency is {spread(numbers['short_ratio'], lambda x: f'{x:.1f}')}× lower with "
             f"DARC than with c-FCFS (median (min–max) over {n} runs).")
    L.append("<!-- live: end -->")
    L.append("")
    verdicts = sorted({r['policies'][p]['client'].get('verdict', '') for r in ok for p in r['policies']
                       if not r['policies'][p]['client'].get('trustworthy')})
    if verdicts:
        L.append("The client's verdict where it did not trust a run: " + "; ".join(f"\"{v}\"" for v in verdicts[:3])
                 + (" (and others)" if len(verdicts) > 3 else "") + ".")
    st = first.get("machine_stalls")
    if st:
        L.append(f"This machine's own stalls (a process spinning on the clock for {st['duration_s']:g} s before each "
                 f"run, nothing else of this report running): {spread(numbers['stall_count'], _n)} gaps over "
                 f"{st['gap_ns'] / 1e3:g} µs, the longest {spread(numbers['stall_max_ns'], _us)} µs — a floor under "
                 "the send lag.")
    res = ok[-1]["policies"].get("darc", {}).get("server", {}).get("reservation")
    if res:
        L.append("DARC's reservation at the end of the last run: "
                 + "; ".join(f"types {g['types']} → workers {g['reserved']}" for g in res) + ".")
    return L
