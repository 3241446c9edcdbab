"""``tailgate bench --markdown``: several runs of the benchmarks as one dated Markdown file.

Manual
------
``tailgate bench --markdown --runs N`` runs the chosen suites N times in one process and hands
every run's records (a list of record lists, one per run, as :func:`tailgate.bench.packet.run_bench`,
:func:`tailgate.bench.sched.bench_sim` and :func:`tailgate.bench.live.bench_live_records` return
them) to :func:`summarize` and :func:`render`:

* :func:`summarize` groups the records of every run by what they measure (benchmark,
  implementation, batch, policy, mode) and gives, per group and per measured field (the rate, the
  ratio to the baseline, the send lag), the median and the range (min and max) over the runs. A
  ratio is the one each run computed against the baseline it measured itself, so its range is the
  range of the per-run ratios; a baseline's own ratio is 1.
* :func:`render` writes the Markdown: a header with the command, the date and the machine
  (:func:`tailgate.bench.provenance.provenance`) and the Python, numpy and numba versions, then
  one table per suite, each cell ``median`` and ``min–max``, and the suite's targets with the number
  of runs that met each. Everything from the header to the last table sits between the markers
  ``<!-- bench:begin -->`` and ``<!-- bench:end -->``: that block is what README.md's Benchmark
  section holds a copy of (:func:`block` reads it, :func:`replace_block` puts it into another file).

Numbers are printed to three significant figures (``14.0``, ``0.0686``, ``92,500``).

Example::

    runs = [run_bench(quick=True) for _ in range(3)]
    text = render(runs, command="tailgate bench --markdown --runs 3 --suite packet --quick",
                  ran=provenance(), versions=versions(), elapsed_s=40.0)
    summarize(runs)[0]["mpps"]   # {'median': ..., 'min': ..., 'max': ..., 'n': 3}
    block(text)     # the part README.md copies
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tailgate.bench.faas import FUNCTIONS, INTERVAL_S, MINUTES, TARGET_MINV_PER_S
from tailgate.bench.live import TARGET_RPS
from tailgate.bench.packet import FRAME_BYTES, N_FLOWS, N_PREFIXES, RING_FRAMES
from tailgate.bench.provenance import describe
from tailgate.bench.sched import LOAD, N_WORKERS, WORKLOAD
from tailgate.core.errors import ArgError

BEGIN = "<!-- bench:begin"
END = "<!-- bench:end -->"

#: The fields that say what a record measures (its row), in the order they are looked up.
KEY_FIELDS = ("name", "mode", "policy", "impl", "batch", "workers")
#: The measured fields summarised over the runs.
MEASURES = ("mpps", "x_dpkt", "mreq_per_s", "x_simpy", "rps", "send_lag_p50_us", "send_lag_p99_us", "offered_max_rps",
            "minv_per_s", "x_naive")


@dataclass(frozen=True)
class Target:
    """A goal one run meets or not: ``field >= at_least`` on the record matching ``where``."""

    label: str
    where: dict
    field: str
    at_least: float

    def met(self, records: list[dict]) -> bool | None:
        """Whether this run's matching record reaches the goal (None: the run has no such record)."""
        for r in records:
            if all(r.get(k) == v for k, v in self.where.items()):
                v = r.get(self.field)
                return v is not None and v >= self.at_least
        return None


@dataclass(frozen=True)
class Suite:
    """One table of the file: its records, columns and targets."""

    suite: str
    title: str
    names: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]      # (heading, key field) before the measures
    measures: tuple[tuple[str, str], ...]     # (heading, measured field)
    baseline: tuple[str, str] | None          # (impl whose ratio is 1, ratio field)
    setup: Callable[[list[dict]], str]
    targets: tuple[Target, ...]


def _packet_setup(rows: list[dict]) -> str:
    return (f"{FRAME_BYTES}-byte IPv4/UDP frames of {N_FLOWS:,} flows. `pcap_read_parse`: read a capture and "
            f"parse every header. `l2l3`: CheckIPHeader → IPv4Lookup ({N_PREFIXES:,} random prefixes) → DecTTL → "
            f"MACRewrite → IPChecksum through the runtime on a ring of {RING_FRAMES:,} frames in memory, and the "
            "same chain per packet with dpkt and scapy. `l2l3_gen`: the chain behind the synthetic source.")


def _sched_setup(rows: list[dict]) -> str:
    sizes = {r["impl"]: r.get("requests", {}).get("median") for r in rows}
    parts = [f"{impl} {int(n):,} requests" for impl, n in sorted(sizes.items()) if n]
    return (f"Workload {WORKLOAD} (High Bimodal) at {LOAD:.0%} load with {N_WORKERS} workers, both simulators on "
            f"streams drawn with the same seed ({', '.join(parts)}); DARC with its oracle reservation.")


def _faas_setup(rows: list[dict]) -> str:
    sizes = {r["impl"]: r.get("invocations", {}).get("median") for r in rows}
    parts = [f"{impl} {int(n):,} invocations" for impl, n in sorted(sizes.items()) if n]
    return (f"A generated Azure-like CPU trace ({FUNCTIONS} functions, {MINUTES:g} minutes, seeded; "
            f"{', '.join(parts)}), dispatch interval {INTERVAL_S:g} s, the reference profile, no CPU contention "
            "(`cores=0`: this trace would need ~120 cores). The baseline "
            "(`naive`) is the FaaSBatch model as a plain per-invocation Python event loop (heapq: arrivals, "
            "ticks, sandbox releases; no bounds, no contention) on a shorter trace from the same generator.")


def _live_setup(rows: list[dict]) -> str:
    tops = [r["offered_max_rps"]["max"] for r in rows if "offered_max_rps" in r]
    ladder = f" (offered up to {int(tops[0]):,} requests/s)" if tops else ""
    return ("Zero-work requests, the client beside the server on the same machine. Closed loop: a window of "
            "requests in flight, the most the server dispatches. Open loop: the highest paced rate answered in "
            f"full{ladder}, with the client's send lag.")


_L2L3_256 = {"name": "l2l3", "impl": "tailgate", "batch": 256}
_READ_256 = {"name": "pcap_read_parse", "impl": "tailgate", "batch": 256}


def _sim(policy: str) -> dict:
    return {"name": "sched_sim", "impl": "tailgate", "policy": policy}


SUITES = (
    Suite("packet", "Data plane", ("pcap_read_parse", "l2l3", "l2l3_gen"),
          (("benchmark", "name"), ("implementation", "impl"), ("batch", "batch")),
          (("Mpps", "mpps"), ("× dpkt", "x_dpkt")), ("dpkt", "x_dpkt"), _packet_setup,
          (Target("`l2l3` at batch 256 ≥ 10 Mpps", _L2L3_256, "mpps", 10.0),
           Target("`l2l3` at batch 256 ≥ 50× dpkt", _L2L3_256, "x_dpkt", 50.0),
           Target("`pcap_read_parse` at batch 256 ≥ 20 Mpps", _READ_256, "mpps", 20.0))),
    Suite("sched", "Request-scheduling simulator against SimPy", ("sched_sim",),
          (("benchmark", "name"), ("policy", "policy"), ("implementation", "impl")),
          (("M requests/s", "mreq_per_s"), ("× SimPy", "x_simpy")), ("simpy", "x_simpy"), _sched_setup,
          tuple(t for p in ("cfcfs", "darc") for t in (
              Target(f"{p} ≥ 2 M requests/s", _sim(p), "mreq_per_s", 2.0),
              Target(f"{p} ≥ 20× SimPy", _sim(p), "x_simpy", 20.0)))),
    Suite("live", "Live server", ("sched_live",),
          (("mode", "mode"), ("policy", "policy"), ("workers", "workers")),
          (("requests/s", "rps"), ("send lag p50 µs", "send_lag_p50_us"), ("send lag p99 µs", "send_lag_p99_us")),
          None, _live_setup,
          (Target(f"closed loop ≥ {TARGET_RPS:,} requests/s", {"name": "sched_live", "mode": "closed_loop"}, "rps",
                  float(TARGET_RPS)),)),
    Suite("faas", "FaaS simulator against a per-invocation event loop", ("faas_sim",),
          (("benchmark", "name"), ("strategy", "policy"), ("implementation", "impl")),
          (("M invocations/s", "minv_per_s"), ("× naive", "x_naive")), ("naive", "x_naive"), _faas_setup,
          tuple(Target(f"{p} ≥ {TARGET_MINV_PER_S:g} M invocations/s", {"name": "faas_sim", "impl": "tailgate",
                                                                          "policy": p}, "minv_per_s", TARGET_MINV_PER_S)
                for p in ("faasbatch", "vanilla"))),
)


def _key(r: dict) -> tuple:
    return tuple((k, r[k]) for k in KEY_FIELDS if k in r)


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[list[dict]]) -> list[dict]:
    """One row per thing measured, in the order first met: its key fields, and for every measured
    field (and ``requests``/``packets``) ``{median, min, max, n}`` over the runs that have it, plus
    ``matches_simpy`` as the number of runs whose simulators agreed and ``runs``, how many runs
    had the row. A baseline's missing ratio (dpkt's ``x_dpkt``) counts as 1."""
    order: list[tuple] = []
    groups: dict[tuple, list[dict]] = {}
    for records in runs:
        for r in records:
            k = _key(r)
            if k not in groups:
                order.append(k)
                groups[k] = []
            groups[k].append(r)
    baselines = {s.baseline[0]: s.baseline[1] for s in SUITES if s.baseline}
    rows = []
    for k in order:
        recs = groups[k]
        row: dict[str, Any] = dict(k)
        row["runs"] = len(recs)
        for field in MEASURES + ("requests", "packets", "invocations"):
            vals = [float(r[field]) for r in recs if _number(r.get(field))]
            if not vals and baselines.get(row.get("impl")) == field:
                vals = [1.0] * len(recs)
            if vals:
                row[field] = _spread(vals)
        agree = [r["matches_simpy"] for r in recs if "matches_simpy" in r]
        if agree:
            row["matches_simpy"] = sum(bool(a) for a in agree)
        rows.append(row)
    return rows


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt3(x: float | None) -> str:
    """``x`` to three significant figures: ``14.0``, ``0.0686``, ``205``, ``92,500``; '–' for none."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        digits = math.floor(math.log10(abs(x))) - 2
        return f"{round(x, -digits):,.0f}"
    return f"{x:#.3g}".rstrip(".")


def _cells(spread: dict | None, baseline: bool = False) -> list[str]:
    if not spread:
        return ["–", "–"]
    if baseline:
        return ["1", "baseline"]
    return [fmt3(spread["median"]), f"{fmt3(spread['min'])}–{fmt3(spread['max'])}"]


def _table(suite: Suite, rows: list[dict]) -> list[str]:
    heads = [h for h, _ in suite.columns]
    for h, _ in suite.measures:
        heads += [h, f"{h}, range"]
    if suite.suite == "sched":
        heads.append("same completions as SimPy")
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join("---" if i < len(suite.columns) else "---:" for i in range(len(heads))) + "|"]
    for row in rows:
        cells = [str(row.get(f, "–")) for _, f in suite.columns]
        for _, f in suite.measures:
            cells += _cells(row.get(f), baseline=suite.baseline == (row.get("impl"), f))
        if suite.suite == "sched":
            cells.append(f"{row['matches_simpy']} of {row['runs']} runs" if "matches_simpy" in row else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _targets(suite: Suite, runs: list[list[dict]]) -> str | None:
    parts = []
    for t in suite.targets:
        verdicts = [t.met(records) for records in runs]
        seen = [v for v in verdicts if v is not None]
        if seen:
            parts.append(f"{t.label}: met in {sum(seen)} of {len(seen)} runs")
    return "Targets: " + "; ".join(parts) + "." if parts else None


def render(runs: list[list[dict]], command: str, ran: dict, versions: dict, elapsed_s: float) -> str:
    """The Markdown file for ``runs`` (one list of records per run); see the manual."""
    rows = summarize(runs)
    n = len(runs)
    labels = (("python", "Python"), ("numpy", "numpy"), ("numba", "numba"), ("tailgate", "tailgate"))
    vers = ", ".join(f"{label} {versions[name]}" for name, label in labels if name in versions)
    took = f"{elapsed_s:.0f} s" if elapsed_s < 120 else f"{elapsed_s / 60:.1f} minutes"
    runs_word = "run" if n == 1 else "runs"
    header = (f"`{command}`, {describe(ran)}; {vers}. {n} {runs_word} in one process, {took} in all. "
              f"Each cell: the median over the {n} {runs_word}, then the range (min–max); a ratio is to the "
              "baseline measured in the same run, and its range is that of the per-run ratios.")
    lines = ["# tailgate bench", "",
             ("Written by `tailgate bench --markdown`; every number below comes from the run it names. "
              "Raw records of every run: `bench.json` beside this file."), "",
             f"{BEGIN} -->", header]
    for suite in SUITES:
        mine = [r for r in rows if r.get("name") in suite.names]
        if not mine:
            continue
        lines += ["", f"**{suite.title}** (`--suite {suite.suite}`). {suite.setup(mine)}", ""]
        lines += _table(suite, mine)
        t = _targets(suite, [[r for r in recs if r.get("name") in suite.names] for recs in runs])
        if t:
            lines += ["", t]
    lines += [END, ""]
    return "\n".join(lines)


def block(text: str, where: str = "the file") -> str:
    """The lines between the ``<!-- bench:begin ... -->`` and ``<!-- bench:end -->`` markers of
    ``text`` (both excluded); :class:`ArgError` naming ``where`` if they are missing."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith(BEGIN)]
    ends = [i for i, ln in enumerate(lines) if ln.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ArgError(f"{where}: expected one '{BEGIN} ... -->' line and one '{END}' line after it")
    return "\n".join(lines[starts[0] + 1: ends[0]])


def replace_block(text: str, new_block: str, where: str = "the file") -> str:
    """``text`` with its bench block (see :func:`block`) replaced by ``new_block``; the marker
    lines themselves are kept as they are."""
    block(text, where)  # the markers are there, once
    lines = text.splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.startswith(BEGIN))
    end = next(i for i, ln in enumerate(lines) if ln.strip() == END)
    return "".join(lines[: start + 1]) + new_block + "\n" + "".join(lines[end:])


NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?![\w])")


def numbers(text: str) -> set[str]:
    """The numbers written in prose ``text`` (``14.0``, ``10,000``, ``205`` of ``205×``), leaving
    out code spans and digits inside names (``l2l3``)."""
    return set(NUMBER.findall(re.sub(r"`[^`]*`", " ", text)))

